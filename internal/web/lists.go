package web

import "net/http"

func listRoutes() []page {
	return []page{
		{"GET /workers", viewer, (*UI).workers},
		{"GET /backfills", viewer, (*UI).backfills},
		{"GET /audit", admin, (*UI).audit},
	}
}

func (u *UI) workers(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }

func (u *UI) backfills(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }

func (u *UI) audit(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }
