// Package web is tasuki's web UI: HTML pages rendered on the server with
// html/template from the same api.Service the JSON API and the CLI use,
// served by 'tasuki server' at "/".
//
// Why this shape:
//
//   - Nothing to build. The templates, the style sheet, the scripts and the
//     one vendored library (htmx, pinned, for paging fragments) are embedded
//     in the binary; a Go build is the whole build and no page loads
//     anything from another site (the Content-Security-Policy of api.Guard
//     allows only the server's own scripts and styles, no inline ones).
//   - One way to act. Pages read through api.Service; every action a page
//     offers (trigger, cancel, retry, rerun, mark, pause, backfill) is a
//     request of the page's script to the JSON API under /api/v1, with the
//     session's CSRF token, so authorization, auditing and validation are
//     the API's, in one place. A page shows a control the viewer's role
//     cannot use disabled, with the reason; the API refuses it anyway.
//   - People log in as users (api.Users): a page without a valid session
//     redirects to /login, which posts to the API's login route. Each page
//     has an access rule in the route table below, as every API route has.
//   - Big runs stay fast: a run's graph is laid out in Go and drawn as SVG,
//     collapsing into groups past a size; lists are paged by the store;
//     live updates come over Server-Sent Events, woken by the runner when
//     this server runs the run (Options.Live) and by a slow check otherwise,
//     and carry only the tasks whose state changed.
package web
