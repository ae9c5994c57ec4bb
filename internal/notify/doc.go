// Package notify tells people what happened to their pipelines: a run at
// risk of missing its deadline, a missed deadline, a failure, a recovery, a
// breached freshness objective. Events are recorded in an outbox in the
// store in the same step that decides them, then delivered to webhooks,
// Slack and e-mail with retries, so a delivery survives a server restart and
// happens once even with several servers. One incident per run and problem:
// retries do not alert again, and a recovery closes the incident it ends.
package notify
