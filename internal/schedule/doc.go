// Package schedule is the time logic of tasuki's scheduler: it parses cron
// expressions in a named time zone, says when a schedule fires next (and when
// it fired last), turns fire times into the logical data intervals that runs
// cover, and decides which intervals are due after a downtime or inside a
// backfill range.
//
// Everything here is pure: no I/O, no goroutines and no wall clock. Every
// function takes the times it needs as arguments, so the scheduler can keep
// "now" and the last scheduled interval in the store (several servers must
// agree on them) and the tests can use any clock.
//
// # Fire times and intervals
//
// A schedule fires at a set of instants T_0 < T_1 < T_2 < .... The run that
// fires at T_k covers the data interval [T_{k-1}, T_k) (Airflow's
// data_interval semantics: the run for a period starts when the period is
// over). Intervals are always aligned to the schedule, which is what makes a
// unique key on (pipeline, interval) able to enforce "exactly once per
// interval".
//
// # Daylight saving time
//
// Cron fields describe local wall-clock times, and on days when the clocks
// change some wall-clock times do not exist and others exist twice. The rules,
// chosen so that every schedule fires at a well-defined set of instants (Next
// and Prev agree, and intervals tile time without overlap):
//
//   - A schedule whose hour field covers all 24 hours ("*/15 * * * *",
//     "@hourly", "5 * * * 1-5") follows absolute time: it fires at every
//     instant whose local wall clock matches. In a repeated hour it fires in
//     both occurrences; in a skipped hour it does not fire, because those
//     wall-clock times never happen. Hourly runs therefore stay one hour long
//     in absolute time across both transitions: no fire is lost and none is
//     doubled.
//   - Any other schedule ("30 2 * * *", "@daily", "0 9-17 * * *") fires once
//     per matching wall-clock time. A time in a repeated hour fires at its
//     first occurrence only (01:30 EDT, not 01:30 EST, on the fall-back day in
//     New York). A time in a skipped hour fires once, at the first instant
//     after the gap: 02:30 on the spring-forward day in New York fires at
//     03:00 EDT, the moment the clocks jump (not at 03:30). The first instant
//     after the gap keeps fire times in the same order as the wall-clock times
//     they stand for (a 02:30 job never fires after a 03:10 one), and several
//     times inside one gap merge into that single fire.
//   - "@every <duration>" fires at whole multiples of the duration since the
//     Unix epoch (1970-01-01T00:00:00Z), in absolute time, whatever the zone.
//
// The cron syntax itself is parsed by github.com/netresearch/go-cron (the
// maintained fork of robfig/cron); this package evaluates the parsed fields
// on a DST-free calendar and maps the matching wall-clock times to instants
// with the rules above, so the fork's own DST handling is never relied on.
package schedule
