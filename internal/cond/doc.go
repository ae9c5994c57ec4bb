// Package cond evaluates the small conditions pipeline files write about
// JSON answers, such as body.status == "ready" or len(body.items) > 0: the
// json keys of http waits and of http tasks' expect. A condition is
// compiled once, when the pipeline file is checked (so a typo is reported
// at its line and column), and evaluated against each decoded body.
//
// The language is expr (github.com/expr-lang/expr): comparisons, && || !,
// arithmetic, in, len(), all/any/filter over lists, string functions. A
// condition sees one variable, body, and must yield a boolean.
package cond
