package web

import "net/http"

func pipelineRoutes() []page {
	return []page{
		{"GET /pipelines/{name}", viewer, (*UI).pipeline},
		{"GET /pipelines/{name}/runs", viewer, (*UI).pipelineRuns},
	}
}

func (u *UI) pipeline(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }

func (u *UI) pipelineRuns(w http.ResponseWriter, r *http.Request) error { return errNotBuilt }
