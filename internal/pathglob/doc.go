// Package pathglob matches slash-separated paths against the globs that
// pipeline files write: the wildcards of path.Match (*, ?, [...] and \
// escapes) within one element, and ** as a whole element for any number of
// elements, none included (reports/**/*.csv).
//
// Three parts of tasuki take such globs and must agree on what one means:
// a map's items (map.glob), a cache key's input files (cache.inputs) and an
// attempt's output files (outputs:). Match and Check are that meaning;
// WalkDir is the walk that the first two share, which starts below the
// pattern's leading literal elements and enters only the directories under
// which something could match, so a narrow glob in a large tree reads
// little of it. Outputs are collected with a walk of their own, which
// follows links inside the working directory, but by the same rules.
package pathglob
