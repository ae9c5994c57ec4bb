package apitest

import (
	"context"
	"slices"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// WorkerList is a fake api.WorkerList: the executors it holds, and Err to
// fail every call.
type WorkerList struct {
	List []api.WorkerInfo
	Err  error
}

var _ api.WorkerList = (*WorkerList)(nil)

// Workers implements api.WorkerList: a copy of List.
func (l *WorkerList) Workers(context.Context) ([]api.WorkerInfo, error) {
	if l.Err != nil {
		return nil, l.Err
	}
	out := slices.Clone(l.List)
	for i := range out {
		out[i].Running = slices.Clone(out[i].Running)
	}
	return out, nil
}
