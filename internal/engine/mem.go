package engine

// Mem is a run held in memory: the State the engine reads, kept current by
// Commit. The local runner owns its run and keeps it here, writing every
// transition through to the store.
type Mem struct {
	run   Run
	tasks []Task
}

// NewMem holds the given run and task states (one per graph node, by index).
func NewMem(run Run, tasks []Task) *Mem { return &Mem{run: run, tasks: tasks} }

// Run returns the run's state.
func (m *Mem) Run() Run { return m.run }

// Task returns task i's state.
func (m *Mem) Task(i int) Task { return m.tasks[i] }

// Len returns the number of tasks.
func (m *Mem) Len() int { return len(m.tasks) }

// Commit applies a transition computed from this state.
func (m *Mem) Commit(tr Transition) {
	if tr.Run != nil {
		m.run = *tr.Run
	}
	for _, c := range tr.Tasks {
		m.tasks[c.Index] = c.Task
	}
}
