-- 0012: drop tasks_by_state. Mirrors
-- internal/store/postgres/migrations/0012_drop_tasks_by_state.sql.
--
-- No query reads tasks by state: a run's tasks are read, updated and
-- deleted by the primary key (run_id, then idx), and nothing looks for the
-- tasks in a state. Yet every change of a task's state rewrote the index:
-- two to three more pages in the WAL for each commit of a task's end and
-- the next one's start, about a fifth of the write cost of a run of many
-- short tasks.
DROP INDEX IF EXISTS tasks_by_state;
