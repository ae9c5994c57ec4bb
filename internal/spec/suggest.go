package spec

import "strings"

// suggestKey proposes the known key of an object that an unknown key most
// likely meant: a key other tools use for the same thing (the aka tag), or a
// known key within a small edit distance.
func suggestKey(key string, sh *shape) string {
	for _, fl := range sh.fields {
		for _, a := range fl.aka {
			if strings.EqualFold(a, key) {
				return fl.key
			}
		}
	}
	return closest(key, sh.keys)
}

// closest returns the candidate nearest to word when it is near enough to be
// a plausible typo (edit distance with transpositions, ignoring case), or a
// candidate that word starts with or that starts with word ("integer" ->
// "int"); "" when none is.
func closest(word string, candidates []string) string {
	w := strings.ToLower(word)
	limit := 1
	switch {
	case len(w) > 8:
		limit = 3
	case len(w) > 4:
		limit = 2
	}
	best, bestDist := "", limit+1
	prefix := ""
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if d := len(lc) - len(w); d <= limit && -d <= limit {
			if dist := editDistance(w, lc, bestDist); dist < bestDist {
				best, bestDist = c, dist
			}
		}
		if prefix == "" && len(lc) >= 3 && len(w) >= 3 && (strings.HasPrefix(w, lc) || strings.HasPrefix(lc, w)) {
			prefix = c
		}
	}
	if best != "" {
		return best
	}
	return prefix
}

// editDistance is the optimal string alignment distance between a and b (the
// Levenshtein distance that also counts swapping two neighbours as one edit),
// over bytes. It gives up and returns limit once the distance reaches it.
func editDistance(a, b string, limit int) int {
	if len(a) > len(b) {
		a, b = b, a
	}
	prev2 := make([]int, len(a)+1)
	prev := make([]int, len(a)+1)
	cur := make([]int, len(a)+1)
	for i := range prev {
		prev[i] = i
	}
	for j := 1; j <= len(b); j++ {
		cur[0] = j
		rowMin := cur[0]
		for i := 1; i <= len(a); i++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[i] = min(prev[i]+1, cur[i-1]+1, prev[i-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[i] = min(cur[i], prev2[i-2]+1)
			}
			rowMin = min(rowMin, cur[i])
		}
		if rowMin >= limit {
			return limit
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(a)]
}
