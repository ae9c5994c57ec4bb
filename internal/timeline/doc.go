// Package timeline tells the story of one run after the fact, for the
// review that follows an incident (感想戦): every record of the run's
// timeline in order with its time since the run started and since the
// record before, each attempt with its worker, outcome and duration, what
// each wait saw and what arrived, retries and their causes, deadline
// predictions, alerts, repairs, operator actions with who made them, and the
// last lines of each failed attempt's log.
//
// It renders two forms from the same reading: Markdown that reads well
// pasted into a review document, and JSON of a documented, stable shape
// (Document) for tools. Both are written as they are read: the run's
// records are read from the store a page at a time (a run may have
// 100,000), so neither form holds them all in memory. The Markdown lists
// every record of a run that fits its row budget, and bounds itself for a
// larger one: stretches of routine records (tasks becoming ready,
// starting, succeeding in a large fan-out) collapse into one counted line,
// and past the budget only what matters is listed, with a count of what
// was left out. The JSON leaves nothing out.
//
// Record kinds it does not know (written by parts of tasuki newer than this
// package) are rendered generically, with their message and data.
package timeline
