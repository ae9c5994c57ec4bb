package web

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// login shows the login form. Its script posts to the API's login route,
// which opens the session; the page itself changes nothing.
func (u *UI) login(w http.ResponseWriter, r *http.Request) error {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	if v, err := u.authenticate(r); err == nil && v.P.Name != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	return u.render(w, r, http.StatusOK, "login", viewData{Title: "Log in", Data: struct {
		Next string
		OIDC bool
	}{next, u.o.OIDC}})
}

// localPath reports whether p is a path on this server, where a login may
// return to: not another site's URL, not a protocol-relative one, and
// nothing a browser would read as either after dropping what it ignores
// (tabs and newlines) or turning a backslash into a slash. A path that
// cleans to something else (dot segments) is refused too, since a redirect
// to it would send the cleaned form.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	decoded := u.Path
	if strings.ContainsAny(decoded, "\\") || strings.HasPrefix(decoded, "//") {
		return false
	}
	return path.Clean(decoded) == decoded || path.Clean(decoded)+"/" == decoded
}

// staticFiles are the embedded assets with their ETags, computed once.
var staticFiles = sync.OnceValue(func() map[string]staticFile {
	m := map[string]staticFile{}
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		m[path.Base(p)] = staticFile{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ct}
		return nil
	})
	return m
})

type staticFile struct {
	body  []byte
	etag  string
	ctype string
}

// static serves the embedded assets: revalidated by ETag on each load, so
// a new binary's assets are never hidden behind an old cache.
func (u *UI) static(w http.ResponseWriter, r *http.Request) error {
	f, ok := staticFiles()[r.PathValue("file")]
	if !ok {
		return api.NotFound("no file %q", r.PathValue("file"))
	}
	h := w.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", f.ctype)
	if r.Method != http.MethodHead {
		_, _ = w.Write(f.body)
	}
	return nil
}

// pipelineRow is one pipeline of the pipelines page.
type pipelineRow struct {
	P    api.Pipeline
	Last engine.RunState // of its newest run; "" for none
	// Deadline is the deadline state of its newest run that has one
	// (on_track, at_risk, missed, met; "" for none), and SLOs its freshness
	// objectives: the service levels people are promised.
	Deadline string
	SLOs     []api.SLO
}

// breached reports whether a promise of the pipeline is broken or about to
// be: an objective breached, or its newest deadline missed or at risk.
func (p pipelineRow) breached() bool {
	for _, o := range p.SLOs {
		if o.State == api.SLOBreached {
			return true
		}
	}
	return p.Deadline == "missed" || p.Deadline == "at_risk"
}

// rank orders the pipelines page: broken and failing first, then running,
// then the rest, each by name: the person on call reads the top.
func (p pipelineRow) rank() int {
	switch {
	case p.P.Error != "":
		return 0
	case p.Last == engine.RunFailed, p.breached():
		return 1
	case p.Last == engine.RunRunning || p.Last == engine.RunQueued:
		return 2
	}
	return 3
}

func (u *UI) pipelines(w http.ResponseWriter, r *http.Request) error {
	list, err := u.o.Service.Pipelines(r.Context())
	if err != nil {
		return err
	}
	v := viewerFrom(r.Context())
	if v.P.Namespace != "" {
		list.Items = slices.DeleteFunc(list.Items, func(p api.Pipeline) bool { return !v.P.Sees(p.Namespace) })
		list.Problems = nil // a broken file's namespace may be unreadable, as in the API
	}
	// One list of every objective (each judged once), not one per pipeline.
	slos := map[string][]api.SLO{}
	if u.o.SLOs != nil {
		all, err := u.o.SLOs.ListSLOs(r.Context(), "")
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.Dataset != "" && v.P.Namespace != "" {
				continue // a dataset's objective is global, as in the API
			}
			slos[o.Pipeline] = append(slos[o.Pipeline], o)
		}
	}
	rows := make([]pipelineRow, 0, len(list.Items))
	for _, p := range list.Items {
		row := pipelineRow{P: p, SLOs: slos[p.Name]}
		if len(p.LastRuns) > 0 {
			row.Last = p.LastRuns[0].State
		}
		for _, run := range p.LastRuns {
			if run.DeadlineState != "" {
				row.Deadline = run.DeadlineState
				break
			}
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b pipelineRow) int {
		return cmp.Or(cmp.Compare(a.rank(), b.rank()), strings.Compare(a.P.Name, b.P.Name))
	})
	return u.render(w, r, http.StatusOK, "pipelines", viewData{Title: "Pipelines", Nav: "pipelines", Data: struct {
		api.PipelineList
		Rows []pipelineRow
	}{list, rows}})
}
