package web

import "net/http"

func runRoutes() []page {
	return []page{
		{"GET /runs/{id}", viewer, (*UI).run},
		{"GET /runs/{id}/live", viewer, (*UI).live},
		{"GET /runs/{id}/events", viewer, (*UI).runEvents},
	}
}

func (u *UI) run(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }

func (u *UI) live(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }

func (u *UI) runEvents(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }
