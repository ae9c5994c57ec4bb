package api

// The timeline export of a run: GET /runs/{id}/timeline, the story of the
// run for the review after an incident, as JSON (a timeline.Document) or
// Markdown. It is read from the store directly, a page of records at a
// time, rather than through Service: a run may have 100,000 records, and
// the answer is streamed as they are read.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

// Timeline formats, for ?format= and Client.Timeline.
const (
	TimelineJSON     = "json"
	TimelineMarkdown = "markdown"
)

// WithTimelines serves GET /runs/{id}/timeline from src (the server's
// store), with the logs of failed attempts from the handler's log store;
// now is the clock an unfinished run's duration is measured with (nil:
// time.Now). Without it the route answers 503 unavailable.
func WithTimelines(src timeline.Source, now func() time.Time) Option {
	return func(h *handler) {
		h.timelines, h.timelineNow = src, now
	}
}

func (h *handler) timeline(w http.ResponseWriter, r *http.Request) error {
	if h.timelines == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server does not export timelines")
	}
	id, err := pathID(r, "id", "run id")
	if err != nil {
		return err
	}
	format, err := queryValue(r, "format")
	if err != nil {
		return err
	}
	switch format {
	case "":
		format = TimelineJSON
	case TimelineJSON, TimelineMarkdown:
	default:
		return invalid("query parameter format=%q: expected json or markdown", format)
	}
	tz, err := queryValue(r, "tz")
	if err != nil {
		return err
	}
	loc, err := timelineZone(tz)
	if err != nil {
		return err
	}
	tl, err := timeline.Load(r.Context(), h.timelines, id, timeline.Options{Logs: h.logs, Location: loc, Now: h.timelineNow})
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("no run %d", id)
	}
	if err != nil {
		return err
	}
	write := tl.WriteJSON
	w.Header().Set("Content-Type", "application/json")
	if format == TimelineMarkdown {
		write = tl.WriteMarkdown
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	}
	w.WriteHeader(http.StatusOK)
	if err := write(r.Context(), w); err != nil {
		if r.Context().Err() != nil {
			return err // the client went away
		}
		// The answer has started, so its status cannot say it failed, and
		// a clean end would pass for a whole export: break the connection,
		// which the client sees as a cut answer.
		h.log.ErrorContext(r.Context(), "api: timeline export cut short", "run", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// timelineZone reads ?tz=: an IANA time zone name for the Markdown's
// times (default UTC).
func timelineZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, invalid("query parameter tz=%q: expected a time zone name such as UTC or Asia/Tokyo", name)
	}
	return loc, nil
}

// Timeline copies the timeline export of a run into w: format is
// TimelineJSON (a timeline.Document) or TimelineMarkdown; tz names the
// time zone of the Markdown's times ("" for UTC).
func (c *Client) Timeline(ctx context.Context, runID int64, format, tz string, w io.Writer) error {
	q := url.Values{}
	if format != "" {
		q.Set("format", format)
	}
	if tz != "" {
		q.Set("tz", tz)
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: runPath(runID) + "/timeline", query: q})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read timeline of run %d: %w", runID, err)
	}
	return nil
}
