package logs

import (
	"math"
	"strconv"
	"strings"
)

// ItemTask is the TaskID of the logs of an item of a map task: TASK.ITEM.
// Task ids hold no dot, so it names no task, and the runner, the API and
// the CLI all name an item's log with it.
func ItemTask(task string, item int) string { return task + "." + strconv.Itoa(item) }

// ParseItemTask splits an item's log TaskID (ItemTask); ok is false for
// anything else (a task id, which holds no dot, or an item number that is
// not a plain non-negative decimal within int32).
func ParseItemTask(name string) (task string, item int, ok bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 || strings.IndexByte(name[:dot], '.') >= 0 {
		return "", 0, false
	}
	digits := name[dot+1:]
	if digits == "" || len(digits) > 10 || (len(digits) > 1 && digits[0] == '0') {
		return "", 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > math.MaxInt32 {
		return "", 0, false
	}
	return name[:dot], n, true
}
