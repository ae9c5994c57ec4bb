package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/server"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// backupCmd is 'tasuki backup DEST': an online copy of the embedded store.
func (a *app) backupCmd() *cobra.Command {
	var (
		force      bool
		configFile string
		db         string
	)
	cmd := &cobra.Command{
		Use:   "backup DEST",
		Short: "Copy the embedded store to a file, safely while a server runs",
		Long: `Write a consistent copy of the embedded SQLite store of the data directory
(--home, $TASUKI_HOME, or ./.tasuki; or the home of a server configuration
given with --config) to the file DEST. It is safe while a server or runs use
the store: the copy is the store as of one moment, and it neither waits for
them nor makes them wait. DEST is created readable by its owner only (0600)
and is checked before it takes its name; an existing DEST is refused unless
--force, which replaces it only once the new copy is complete.

The copy holds the store only. Attempt logs (logs/), output files
(artifacts/) and the secret key (secret.key, unless $TASUKI_SECRET_KEY gives
it) are files of the data directory: back them up with your file backups.

To restore: stop the server, delete tasuki.db-wal and tasuki.db-shm from the
data directory, copy the backup to tasuki.db there (mode 0600), and start
the server; runs that were running at the time of the backup are recovered
like after a crash. See docs/operations.md.

A PostgreSQL store (--db, $TASUKI_DB or db in --config) is backed up with
pg_dump; this command says so and exits 1.`,
		Example: `  tasuki backup /var/backups/tasuki/tasuki-$(date +%F).db --home /var/lib/tasuki
  tasuki backup --config /etc/tasuki/server.yaml --force /var/backups/tasuki/latest.db`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := server.DefaultConfig()
			if configFile != "" {
				if err := server.LoadConfigFile(&cfg, configFile); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
			}
			if err := server.ApplyEnv(&cfg, os.LookupEnv); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if a.home != "" {
				cfg.Home = a.home
			}
			if cmd.Flags().Changed("db") {
				cfg.DB = db
			}
			if cfg.DB != "" {
				return &exitError{code: exitFailed, err: errors.New("the store is PostgreSQL (db): back it up with pg_dump, " +
					"for example 'pg_dump --format=custom --file=tasuki.dump \"$TASUKI_DB\"', and restore it with pg_restore; " +
					"'tasuki backup' copies the embedded SQLite store of a data directory")}
			}
			src, err := filepath.Abs(filepath.Join(cfg.Home, "tasuki.db"))
			if err != nil {
				return err
			}
			info, err := sqlite.Backup(cmd.Context(), src, args[0], sqlite.BackupOptions{Overwrite: force})
			if errors.Is(err, sqlite.ErrBackupExists) {
				return &exitError{code: exitFailed, err: fmt.Errorf("%s exists; give another name, or --force to replace it", args[0])}
			}
			if err != nil {
				return err
			}
			newer := ""
			if info.SchemaVersion > info.Known {
				newer = fmt.Sprintf(" (newer than this tasuki's %d: restore it with the tasuki that wrote it)", info.Known)
			}
			runs := "runs"
			if info.Runs == 1 {
				runs = "run"
			}
			fmt.Fprintf(a.io.Out, "backed up %s to %s: %d %s (newest run %d), schema version %d%s, %d bytes\n",
				src, info.Path, info.Runs, runs, info.NewestRun, info.SchemaVersion, newer, info.Bytes)
			fmt.Fprintf(a.io.Out, "to restore: stop the server, delete %s-wal and %s-shm, copy %s to %s (mode 0600), start the server; logs/, artifacts/ and secret.key are not in the copy\n",
				src, src, info.Path, src)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&force, "force", false, "replace DEST if it exists (once the new copy is complete)")
	f.StringVar(&configFile, "config", "", "server configuration file (YAML) whose home or db to back up")
	f.StringVar(&db, "db", "", "PostgreSQL URL of the store (default $TASUKI_DB): refused, back it up with pg_dump")
	return cmd
}
