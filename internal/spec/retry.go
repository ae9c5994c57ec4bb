package spec

// Attempts is how many attempts the task may make in all: Retry.Attempts, or
// 1 without a retry policy.
func (t Task) Attempts() int {
	if t.Retry == nil || t.Retry.Attempts < 1 {
		return 1
	}
	return t.Retry.Attempts
}
