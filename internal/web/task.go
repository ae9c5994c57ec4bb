package web

import "net/http"

func taskRoutes() []page {
	return []page{
		{"GET /runs/{id}/tasks/{task}", viewer, (*UI).task},
		{"GET /runs/{id}/tasks/{task}/items", viewer, (*UI).taskItems},
	}
}

func (u *UI) task(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }

func (u *UI) taskItems(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }
