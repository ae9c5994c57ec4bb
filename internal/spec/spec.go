package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Pipeline is one parsed pipeline file.
type Pipeline struct {
	// Name identifies the pipeline; it is unique among loaded pipelines.
	Name string `yaml:"name" doc:"Unique name of the pipeline: letters, digits, '-', '_' and '.', starting with a letter, digit or '_'." required:"true" pattern:"name"`
	// Version is the format version the file is written in. Parse sets it to
	// 1 when the file leaves it out, so a later tasuki can tell old files
	// from new ones without guessing.
	Version     int               `yaml:"version,omitempty" doc:"Format version of the file. Only 1 exists; leaving it out means 1." enum:"1"`
	Description string            `yaml:"description,omitempty" doc:"Free text shown in listings and the UI."`
	Params      []Param           `yaml:"params,omitempty" doc:"Parameters a run accepts. They reach commands as environment variables TASUKI_PARAM_<NAME>, never spliced into shell text." aka:"parameters,args,arguments"`
	Env         map[string]string `yaml:"env,omitempty" doc:"Environment variables given to every task of the pipeline. Names are letters, digits and '_' not starting with a digit; TASUKI_* is reserved. A value is a string, or {secret: NAME} for the value of a secret." aka:"environment,vars,variables" secretenv:"SecretEnv"`
	// SecretEnv are the variables of env whose value is a secret
	// ({secret: NAME} in the file): variable name to secret name. They are
	// kept apart from Env so that nothing that shows or stores a pipeline's
	// variables can hold a secret's value: it is looked up only when an
	// attempt starts.
	SecretEnv map[string]string `yaml:"-"`
	Secrets   []string          `yaml:"secrets,omitempty" doc:"Secrets every task of the pipeline receives, each as an environment variable of its name in upper case (warehouse_password: WAREHOUSE_PASSWORD). Secrets come from the server's secret store, its secrets_dir or its TASUKI_SECRET_<NAME> variables; their values are masked in logs." pattern:"secret" aka:"credentials,secret"`
	Schedule  *Schedule         `yaml:"schedule,omitempty" doc:"When 'tasuki server' starts runs of this pipeline by itself. Without it, runs start only by hand or by API." aka:"cron,trigger,triggers,schedule_interval"`
	// MaxActiveRuns bounds the runs of this pipeline that are queued for
	// execution at once; 0 means no limit.
	MaxActiveRuns int `yaml:"max_active_runs,omitempty" doc:"Most runs of this pipeline executing at once; further runs wait, queued, in order. 0 or absent means no limit." min:"0" aka:"max_runs,concurrency"`
	// Deadline is when each run should have finished (see deadline.go);
	// nil when the pipeline has none.
	Deadline *Deadline `yaml:"deadline,omitempty" doc:"When each run should have finished: {at: \"20:00\", timezone: Asia/Tokyo} (the first such time at or after the run's interval end, or after its creation for a run without one) or {after: 90m} (that long after the interval end, or the creation). The server predicts each run's finish and says when it is at risk of missing it." aka:"sla,due,due_by,finish_by"`
	Repair   *Repair   `yaml:"repair,omitempty" doc:"Self-healing: when a run fails because its data was missing (a wait timed out, or a task exited with one of its retry.data_missing_exit_codes), keep watching for the data and, once it is there, retry the failed tasks and what follows them in the same run." aka:"heal,self_heal,auto_repair"`
	SLO      *SLO      `yaml:"slo,omitempty" doc:"A freshness objective on the pipeline's success: a run of it succeeded by a time of day (fresh_by), or never longer ago than a maximum age (max_age). 'tasuki slo' shows its state, compliance and breaches." aka:"objective,freshness,service_level"`
	Datasets []Dataset `yaml:"datasets,omitempty" doc:"Freshness objectives on datasets the pipeline's tasks produce: a list of {name: DATASET, slo: {...}}." aka:"assets,outputs"`
	Notify   []Notify  `yaml:"notify,omitempty" doc:"Where to tell people about this pipeline's runs: a list of destinations, each one of webhook, slack or email, with the events it wants (on). See also the server's notify routes, which apply to every pipeline." aka:"notifications,alerts,alerting,notification"`
	Tasks    []Task    `yaml:"tasks" doc:"The tasks of the pipeline. Order does not matter; 'needs' gives the graph." required:"true" aka:"steps,jobs,nodes"`

	// Source says where the pipeline came from; it is not part of the format.
	Source Source `yaml:"-"`
}

// Source records the origin of a parsed pipeline: the file and the hash of its
// exact bytes, so a run can point at the version it started with.
type Source struct {
	File string
	Hash string // hex SHA-256 of the file's bytes
	Data []byte // the file's bytes, kept so the version can be stored
}

// ParamType is the declared type of a parameter.
type ParamType string

// Parameter types.
const (
	ParamString   ParamType = "string"
	ParamInt      ParamType = "int"
	ParamFloat    ParamType = "float"
	ParamBool     ParamType = "bool"
	ParamDate     ParamType = "date"
	ParamDatetime ParamType = "datetime"
	ParamList     ParamType = "list"
)

// ParamTypes lists every parameter type, in the order documentation shows them.
var ParamTypes = []ParamType{ParamString, ParamInt, ParamFloat, ParamBool, ParamDate, ParamDatetime, ParamList}

// Param declares one parameter of a pipeline.
type Param struct {
	Name string    `yaml:"name" doc:"Parameter name: letters, digits, '-' and '_'. The environment variable is TASUKI_PARAM_ followed by the name in upper case with non-alphanumerics as '_'." required:"true" pattern:"id"`
	Type ParamType `yaml:"type,omitempty" doc:"One of string, int, float, bool, date (YYYY-MM-DD), datetime (RFC 3339), list (of strings). Default string." enum:"string,int,float,bool,date,datetime,list"`
	// Default is the value used when a run gives none. After Parse it holds the
	// same Go type Coerce returns for the parameter's type (string, int64,
	// float64, bool, time.Time or []string), or nil when there is no default.
	Default     any    `yaml:"default,omitempty" doc:"Value used when a run does not give one. Must match the type; a string is read the way a value given on the command line is."`
	Required    bool   `yaml:"required,omitempty" doc:"A run without a value (and no default) is refused."`
	Description string `yaml:"description,omitempty" doc:"Shown in the UI and in 'tasuki trigger --help'."`
	Secret      bool   `yaml:"secret,omitempty" doc:"The value is a secret: it is masked in logs like a secret, and shown as *** by the API and 'tasuki status'." aka:"sensitive,masked"`
}

// EnvName is the environment variable that carries the parameter to commands.
func (p Param) EnvName() string { return "TASUKI_PARAM_" + EnvSafe(p.Name) }

// EnvSafe turns a name into the shape of an environment variable name:
// upper case, with every character other than A-Z, 0-9 replaced by '_'.
func EnvSafe(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Task is one node of the pipeline graph. It does exactly one kind of work:
// run a command (Run), wait for a condition (Wait), run SQL statements (SQL),
// make an HTTP request (HTTP), do nothing (Noop) or search the host
// inventory (Inventory); Kind names which.
type Task struct {
	ID   string  `yaml:"id" doc:"Identifier unique within the pipeline: letters, digits, '-' and '_', starting with a letter, digit or '_'." required:"true" pattern:"id" aka:"name,key,task"`
	Run  Command `yaml:"run,omitempty" doc:"Command to run. A string runs with /bin/sh -c; a list is an argv run directly, without a shell. A task has exactly one of run, wait, sql, http, noop and inventory." aka:"command,cmd,script,shell,exec"`
	Wait *Wait   `yaml:"wait,omitempty" doc:"Instead of running something, wait until a condition holds: a file arrived, an HTTP endpoint answers, a SQL query returns true, another pipeline's run of the same interval succeeded, a dataset was updated. Between checks (pokes) the wait holds no execution slot." aka:"sensor,await,until"`
	SQL  *SQL    `yaml:"sql,omitempty" doc:"Run SQL statements in one transaction against PostgreSQL, MySQL/MariaDB or SQLite, in-process (no shell). Parameters are bound, never spliced." aka:"query,database,db"`
	HTTP *HTTP   `yaml:"http,omitempty" doc:"Make an HTTP request in-process (no shell), retried on 5xx and connection errors; the response body is the task's result." aka:"request,webhook,url"`
	Noop *Noop   `yaml:"noop,omitempty" null:"empty" doc:"Do nothing and succeed at once, in-process: a join point for tasks that need several others, a placeholder, or a map whose items cost only their orchestration. Write noop: {} (or noop: with no value)." aka:"empty,dummy,nop,pass,join"`
	// Inventory runs on the server only: it reads the host inventory of
	// the server's store (docs/inventory.md).
	Inventory *Inventory        `yaml:"inventory,omitempty" doc:"Search the server's host inventory, as 'tasuki hosts' does: the result is a JSON array with one flat object per matching host (for map: {from: ...}). Runs on the server, never on a remote worker." aka:"hosts,host_search,sweep,inventory_sweep"`
	Needs     []string          `yaml:"needs,omitempty" doc:"Ids of tasks that must succeed before this one starts." aka:"depends_on,depends,dependencies,deps,after,requires,upstream"`
	Retry     *Retry            `yaml:"retry,omitempty" doc:"Retry policy. Without it a task runs once." aka:"retries,retry_policy"`
	Timeout   Duration          `yaml:"timeout,omitempty" doc:"Longest an attempt may run (Go duration such as 90s, 5m, 1h30m); 0s or absent means no limit. The whole process group is sent SIGTERM, then SIGKILL after a grace period." aka:"timeout_seconds,time_limit,execution_timeout"`
	Env       map[string]string `yaml:"env,omitempty" doc:"Environment variables for this task; they override the pipeline's. A value is a string, or {secret: NAME} for the value of a secret." aka:"environment,vars,variables" secretenv:"SecretEnv"`
	// SecretEnv are the task's variables whose value is a secret, like
	// Pipeline.SecretEnv.
	SecretEnv map[string]string `yaml:"-"`
	Secrets   []string          `yaml:"secrets,omitempty" doc:"Secrets this task receives besides the pipeline's, each as an environment variable of its name in upper case." pattern:"secret" aka:"credentials,secret"`
	Pool      string            `yaml:"pool,omitempty" doc:"Named pool of execution slots the task draws from (pools are configured on the server, e.g. a 'warehouse' pool of 4). Absent: only the executor's parallelism applies." pattern:"id" aka:"pools,slot,queue_pool"`
	Labels    []string          `yaml:"labels,omitempty" doc:"Labels a worker must all have to run the task (for example [gpu] or [spot]); workers declare theirs with 'tasuki worker --labels'. Absent: any worker." pattern:"id" aka:"tags,worker_labels,node_selector,queue"`
	Priority  int               `yaml:"priority,omitempty" doc:"Tasks with a higher priority get free slots first (across all runs); equal priorities go in the order they became ready. Default 0; may be negative." aka:"weight,priority_weight"`
	Workdir   string            `yaml:"workdir,omitempty" doc:"Working directory, relative to the pipeline file's directory unless absolute." aka:"dir,cwd,working_dir,working_directory"`
	Produces  []string          `yaml:"produces,omitempty" doc:"Datasets this task writes. Each success records an update of each (time, run, interval, and metadata the task may write as JSON to the file $TASUKI_DATASET_<NAME>); updates start the pipelines scheduled on them and satisfy dataset waits." pattern:"name" aka:"outputs_datasets,writes,publishes,emits"`
	Consumes  []string          `yaml:"consumes,omitempty" doc:"Datasets this task reads, for lineage ('tasuki lineage'). Declaring them starts nothing; use schedule.datasets or a dataset wait for that." pattern:"name" aka:"reads,inputs_datasets,uses"`
	// ExpectedDuration is the prior of the task's duration for deadline
	// predictions, used while the task has too little history.
	Map              *Map     `yaml:"map,omitempty" null:"refuse" doc:"Run the task once per item (fan-out), over up to millions of items: a list, the lines of a file, the files of a glob, an upstream task's result or a range of numbers. Each attempt gets its item in TASUKI_ITEM (and TASUKI_ITEM_<KEY> for the keys of a flat object) and its position in TASUKI_ITEM_INDEX. Tasks that need a map get every item's result as JSON lines, in item order." aka:"foreach,for_each,fan_out,fanout,loop,expand,each,with_items,matrix"`
	Cache            *Cache   `yaml:"cache,omitempty" doc:"Reuse the result (and outputs) of an earlier attempt with the same inputs instead of running again, across runs and pipelines. The key hashes the task's definition, parameters, environment (secrets by hash), declared input files, the results of its needs and the item of a map. cache: {} turns it on with the defaults." aka:"caching,memoize,cache_key"`
	Inputs           []string `yaml:"inputs,omitempty" doc:"Files the task reads, as paths or globs relative to its working directory: their content is part of its cache key. ${VAR} is replaced by the attempt's variable VAR (such as ${TASUKI_ITEM} for a map's item)." aka:"input,input_files,sources,deps_files"`
	Outputs          []string `yaml:"outputs,omitempty" doc:"Files the task writes, as paths or globs relative to its working directory: after a success they are kept in the artifact store (by content) and placed, for every task that needs this one, under $TASUKI_ARTIFACTS/<this task's id>/, on whichever machine it runs. A cache hit restores them." aka:"output,output_files,artifacts_out,products"`
	ExpectedDuration Duration `yaml:"expected_duration,omitempty" doc:"How long the task usually takes (such as 8s or 20m), for the predicted finish of runs with a deadline while the task has fewer than 3 successful attempts to go by; after that its recent durations count." aka:"estimate,expected,eta,expected_runtime"`
}

// JSON is a value of any type given in YAML (a map item), kept as
// compact JSON.
type JSON []byte

// Map is a task's fan-out: exactly one source of items (items, file,
// glob, from or range) and how the items run.
type Map struct {
	Items       []JSON    `yaml:"items,omitempty" doc:"The items, listed: strings, numbers or flat objects such as {user: ana, region: eu}." aka:"values,list,over,with_items"`
	File        string    `yaml:"file,omitempty" doc:"A file with one item per line, relative to the pipeline file's directory unless absolute; a line that is a JSON object, array, number or quoted string is that value, any other line is a string. Blank lines are skipped. ${VAR} is replaced by the run's variable VAR (parameters, interval)." aka:"lines,path,from_file,jsonl"`
	Glob        string    `yaml:"glob,omitempty" doc:"A glob (*, ?, [...], ** for any depth): one item per matching file, its path relative to the pipeline file's directory, in sorted order. ${VAR} is replaced as for file." aka:"files,pattern,paths"`
	From        string    `yaml:"from,omitempty" doc:"An upstream task (it becomes a need): its result is the items when it is a JSON array; a JSON string is the path of a JSON-lines file it wrote (relative to its working directory); a map upstream gives its items' results." pattern:"id" aka:"task,upstream,result_of,from_task"`
	Range       *Range    `yaml:"range,omitempty" doc:"The numbers start, start+step, ... up to but not including stop." aka:"numbers,sequence,seq"`
	Concurrency int       `yaml:"concurrency,omitempty" doc:"Most items running at once (with batch, most batches); each also needs an execution slot. Default: no limit of its own." min:"1" aka:"parallel,parallelism,max_parallel,max_concurrency,limit"`
	Tolerate    *Tolerate `yaml:"tolerate,omitempty" doc:"Failed items the map accepts and still succeeds. Default: none, and the map stops starting items at the first failure (after its retries)." aka:"allow_failures,max_failures,failure_tolerance,tolerated_failures"`
	Batch       int       `yaml:"batch,omitempty" doc:"Run this many items per process (run tasks only): the items reach its standard input as JSON lines, TASUKI_ITEM is not set, and it writes one JSON result line per item, in order, to $TASUKI_RESULT. For items too cheap for a process each." min:"1" aka:"batch_size,chunk,chunk_size"`
	Zip         bool      `yaml:"zip,omitempty" doc:"With from naming a map: item i runs as soon as item i of that map succeeded, with its result as the item, while the map still runs (instead of once it ended). An item whose upstream item did not succeed is skipped." aka:"zipped,pairwise,stream,streaming,item_wise,per_item"`
}

// Noop is the body of a task that does nothing (noop: {}): it has no keys.
// Like Airflow's EmptyOperator, it joins branches (a task that needs
// several others and that others need) without running anything.
type Noop struct{}

// Range is a map over numbers.
type Range struct {
	Start int `yaml:"start,omitempty" doc:"First number. Default 0." aka:"from,begin,first"`
	Stop  int `yaml:"stop" doc:"The end, not included." required:"true" aka:"end,to,until,last"`
	Step  int `yaml:"step,omitempty" doc:"Increment; may be negative. Default 1." aka:"by,increment,stride"`
}

// Tolerate is how many failed items a map accepts.
type Tolerate struct {
	Count   int     `yaml:"count,omitempty" doc:"At most this many failed items." min:"0" aka:"items,max,number,n"`
	Percent float64 `yaml:"percent,omitempty" doc:"At most this percentage of the items failed (0 to 100)." min:"0" max:"100" aka:"pct,ratio,fraction,rate"`
}

// Cache is a task's content cache policy.
type Cache struct {
	Key     string   `yaml:"key,omitempty" doc:"An expression whose value replaces the parameters, environment and needs' results in the key (the definition, input files, version and item stay), such as params.date or item.user: only what it names invalidates the cache." aka:"expr,key_expr,cache_key"`
	TTL     Duration `yaml:"ttl,omitempty" doc:"How long an entry may be reused (such as 7d written 168h, or 12h). Default: the server's cache_ttl." aka:"expire,expires,expiry,max_age"`
	Version string   `yaml:"version,omitempty" doc:"Any text: change it to invalidate every entry of the task at once." aka:"v,revision,salt"`
}

// Kind names the kind of work a task does: "shell" (run), "sql", "http",
// "noop", "inventory", or "wait.<condition>" (wait.file, wait.http, wait.sql, wait.pipeline,
// wait.dataset). It is the key of the executor that runs the task's attempts.
func (t Task) Kind() string {
	switch {
	case t.Wait != nil:
		return "wait." + t.Wait.Condition()
	case t.SQL != nil:
		return "sql"
	case t.HTTP != nil:
		return "http"
	case t.Noop != nil:
		return "noop"
	case t.Inventory != nil:
		return "inventory"
	}
	return "shell"
}

// IsWait reports whether the task waits for a condition rather than runs
// something.
func (t Task) IsWait() bool { return t.Wait != nil }

// Wait is the condition a waiting task checks at each poke. Exactly one of
// File, HTTP, SQL, Pipeline and Dataset is set; the other keys refine it.
type Wait struct {
	File      string            `yaml:"file,omitempty" doc:"Wait until a file exists: a path or a glob (*, ?, [...]), relative to the task's working directory unless absolute. The matched paths are the task's result." aka:"path,glob,files"`
	MinSize   int64             `yaml:"min_size,omitempty" doc:"file: every matched file has at least this many bytes." min:"0" aka:"minsize,size"`
	NonEmpty  bool              `yaml:"non_empty,omitempty" doc:"file: every matched file has at least one byte." aka:"nonempty,not_empty"`
	Marker    string            `yaml:"marker,omitempty" doc:"file: a companion file that must exist too, relative to the matched file's directory (such as _SUCCESS)." aka:"success_file,done_file"`
	StableFor Duration          `yaml:"stable_for,omitempty" doc:"file: the matched files' sizes and times stayed unchanged this long, so a file still being written is not taken." aka:"stable,settle,quiet_for"`
	HTTP      string            `yaml:"http,omitempty" doc:"Wait until this URL answers with an expected status (and, with json, a body that satisfies a condition). ${VAR} in it is replaced by the task's variable VAR (parameters, secrets). The decoded body is the task's result." aka:"url,endpoint"`
	Status    []int             `yaml:"status,omitempty" doc:"http: the statuses that count as an answer; default any 2xx." aka:"status_code,status_codes,expect_status"`
	JSON      string            `yaml:"json,omitempty" doc:"http: a condition on the decoded JSON body, such as body.status == \"ready\" or len(body.items) > 0 (expr language)." aka:"condition,expr,expect,body"`
	Headers   map[string]string `yaml:"headers,omitempty" doc:"http: request headers; ${VAR} in a value is replaced by the task's variable VAR, so a secret can be sent: Authorization: Bearer ${API_TOKEN} with secrets: [api_token]." aka:"header"`
	SQL       string            `yaml:"sql,omitempty" doc:"Wait until this query returns a row whose first column is true (or a non-zero number). :name binds the run's parameter name, :interval_start and :interval_end the run's interval." aka:"query"`
	DSN       string            `yaml:"dsn,omitempty" doc:"sql: the database, as postgres://..., mysql://user:pass@host:3306/db or sqlite:///path/file.db; ${VAR} is replaced by the task's variable VAR (a secret)." aka:"url,database,connection,conn"`
	Pipeline  string            `yaml:"pipeline,omitempty" doc:"Wait until this pipeline's run of the same logical interval succeeded (for a run without an interval: its newest run). With task, until that task of it succeeded." pattern:"name" aka:"dag,upstream_pipeline,external_pipeline"`
	Task      string            `yaml:"task,omitempty" doc:"pipeline: a task of that pipeline that must have succeeded, instead of its whole run." pattern:"id" aka:"task_id,step"`
	Dataset   string            `yaml:"dataset,omitempty" doc:"Wait until this dataset was updated in the run's interval (at or after its start; for a run without an interval, after the run was created). The update is the task's result." pattern:"name" aka:"asset,data"`
	Poke      Duration          `yaml:"poke,omitempty" doc:"Time between checks. Default 30s." aka:"poke_interval,interval,every,period"`
	Timeout   Duration          `yaml:"timeout,omitempty" doc:"Longest wait; then the task ends timed_out (retried by its retry policy) with what was last seen. 0s or absent: no limit." aka:"max_wait,timeout_seconds"`
	Mode      string            `yaml:"mode,omitempty" doc:"reschedule (the default and only mode): between pokes the wait holds no execution slot and no goroutine; a thousand waits cost only their pokes." enum:"reschedule"`
}

// DefaultPoke is the time between checks of a wait that gives none.
const DefaultPoke = 30 * time.Second

// MinPoke is the shortest poke interval a file may give.
const MinPoke = 10 * time.Millisecond

// Condition names what the wait checks: file, http, sql, pipeline or
// dataset ("" when none is set, which Parse refuses).
func (w *Wait) Condition() string {
	switch {
	case w.File != "":
		return "file"
	case w.HTTP != "":
		return "http"
	case w.SQL != "":
		return "sql"
	case w.Pipeline != "":
		return "pipeline"
	case w.Dataset != "":
		return "dataset"
	}
	return ""
}

// PokeEvery is the poke interval, with the default applied.
func (w *Wait) PokeEvery() time.Duration {
	if w.Poke <= 0 {
		return DefaultPoke
	}
	return w.Poke.D()
}

// SQL is a sql task: statements run in one transaction.
type SQL struct {
	DSN     string `yaml:"dsn" doc:"The database, as postgres://user@host:5432/db, mysql://user:pass@host:3306/db or sqlite:///path/file.db (relative: sqlite:file.db, from the working directory); ${VAR} is replaced by the task's variable VAR, so a password can come from a secret." required:"true" aka:"url,database,connection,conn"`
	Query   string `yaml:"query,omitempty" doc:"The statements, separated by ';'. :name binds the run's parameter name; :interval_start and :interval_end bind the run's interval. Values are bound, never spliced into the text." aka:"statement,statements,sql"`
	File    string `yaml:"file,omitempty" doc:"A file holding the statements instead of query, relative to the task's working directory (read where the task runs)." aka:"path,script"`
	MaxRows int    `yaml:"max_rows,omitempty" doc:"Most rows of the last SELECT kept in the task's result. Default 100, at most 10000." min:"0" max:"10000" aka:"limit,rows"`
}

// HTTP is an http task: one request, retried on 5xx and connection errors.
type HTTP struct {
	URL     string            `yaml:"url" doc:"The URL; ${VAR} is replaced by the task's variable VAR (parameters, secrets, interval)." required:"true" aka:"endpoint,uri,href"`
	Method  string            `yaml:"method,omitempty" doc:"GET, POST, PUT, PATCH, DELETE or HEAD. Default GET, or POST when a body is given." enum:"GET,POST,PUT,PATCH,DELETE,HEAD" aka:"verb"`
	Headers map[string]string `yaml:"headers,omitempty" doc:"Request headers; ${VAR} in a value is replaced by the task's variable VAR (Authorization: Bearer ${API_TOKEN} with secrets: [api_token])." aka:"header"`
	Body    string            `yaml:"body,omitempty" doc:"Request body; ${VAR} is replaced by the task's variable VAR." aka:"data,payload,json"`
	Expect  *Expect           `yaml:"expect,omitempty" doc:"What counts as success. Default: any 2xx status." aka:"expected,assert,check"`
	Retries int               `yaml:"retries,omitempty" doc:"Further tries within one attempt after a 5xx or 429 answer or a connection error, with a short backoff (0.5s, doubling). Default 2; 0 sends the request once (for a request that must not be repeated). For more, use the task's retry policy." min:"0" max:"10" aka:"retry_count,max_retries"`
}

// DefaultHTTPRetries is the further tries of an http task that gives no
// retries: Parse fills it in, so an explicit 0 keeps its meaning (once).
const DefaultHTTPRetries = 2

// Expect is what an http task's answer must satisfy.
type Expect struct {
	Status []int  `yaml:"status,omitempty" doc:"Statuses that count as success; default any 2xx." aka:"status_code,status_codes,code,codes"`
	JSON   string `yaml:"json,omitempty" doc:"A condition on the decoded JSON body, such as body.ok == true (expr language)." aka:"condition,expr,body"`
}

// Inventory is an inventory task: a search of the server's host inventory
// with the filters of 'tasuki hosts', whose result is the matching hosts.
type Inventory struct {
	Package     string `yaml:"package,omitempty" doc:"Hosts with an installed package of this binary or source name (dnsmasq finds dnsmasq-base, built from dnsmasq). ${VAR} is replaced by the task's variable VAR." aka:"pkg,name"`
	VersionLT   string `yaml:"version_lt,omitempty" doc:"With package (or advisory): its installed version is lower than this one, by each host's rules (dpkg's or rpm's)." aka:"lt,older_than,below,version_below"`
	VersionLE   string `yaml:"version_le,omitempty" doc:"With package (or advisory): its installed version is at most this one." aka:"le,at_most"`
	VersionEQ   string `yaml:"version_eq,omitempty" doc:"With package (or advisory): its installed version is this one." aka:"eq,version,equals"`
	Service     string `yaml:"service,omitempty" doc:"Hosts with this systemd unit (dnsmasq is dnsmasq.service)." aka:"unit,systemd"`
	Active      bool   `yaml:"active,omitempty" doc:"With service: only hosts where it is active." aka:"running"`
	Port        int    `yaml:"port,omitempty" doc:"Hosts listening on this TCP or UDP port." min:"1" max:"65535" aka:"listening,listen"`
	OS          string `yaml:"os,omitempty" doc:"Hosts of this distribution, and release after a colon: debian, debian:12, rocky:9 (9.4 is a release of 9)." aka:"distro,distribution,release"`
	Stale       bool   `yaml:"stale,omitempty" doc:"Only hosts whose last report is older than the server's host_stale_after." aka:"silent"`
	Advisory    string `yaml:"advisory,omitempty" doc:"The hosts this advisory (an OSV id, or a CVE it names) affects, with the fixed version; the server's advisories setting names where advisories are. ${VAR} is replaced." aka:"cve,vulnerability,osv"`
	FailIfFound bool   `yaml:"fail_if_found,omitempty" doc:"Fail the task when any host matches (a check that pages through the pipeline's notify); the result is still the hosts. Default: succeed either way." aka:"fail_on_match,fail,fail_if_any"`
	MaxHosts    int    `yaml:"max_hosts,omitempty" doc:"Most hosts the result may hold; more matching hosts fail the task rather than leave some out. Default 1000, at most 5000." min:"1" max:"5000" aka:"limit,max"`
}

// Inventory task limits (Inventory.MaxHosts).
const (
	DefaultInventoryMaxHosts = 1000
	MaxInventoryMaxHosts     = 5000
)

// Schedule says when the server starts runs by itself. Each fire time ends a
// logical interval [previous fire, this fire) that the run covers, so reruns
// and backfills of the same interval compute the same data.
type Schedule struct {
	Cron       string   `yaml:"cron,omitempty" doc:"Cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with leading seconds, or @hourly, @daily, @weekly, @monthly, @yearly, @every 15m. A schedule has cron, datasets or both." aka:"expression,expr,at"`
	Datasets   []string `yaml:"datasets,omitempty" doc:"Start a run when every one of these datasets (with any: true, one of them) was updated since the pipeline's last dataset-started run, once per set of updates. With cron too: at each cron time, once the data is there." pattern:"name" aka:"assets,on_datasets,data"`
	Any        bool     `yaml:"any,omitempty" doc:"datasets: start when any one of the datasets was updated, instead of all of them." aka:"any_dataset,or"`
	Timezone   string   `yaml:"timezone,omitempty" doc:"IANA time zone the expression is read in, such as Asia/Tokyo. Default: the server's timezone setting. Daylight saving: a time in a skipped hour fires once, after the gap; a time in a repeated hour fires once." aka:"tz,zone,time_zone"`
	CatchUp    string   `yaml:"catchup,omitempty" doc:"What to do with intervals missed while the server was down or the pipeline paused: all (run each, oldest first), latest (run only the newest; the default) or none." enum:"all,latest,none" aka:"catch_up,catchup_policy"`
	MaxCatchUp int      `yaml:"max_catchup,omitempty" doc:"With catchup: all, the most missed intervals started per scheduler tick (default 100); the rest follow, so none is skipped." min:"0" aka:"max_catch_up"`
}

// Command is what a shell task runs: either Shell (a script for /bin/sh -c) or
// Argv (run directly). Exactly one is set.
type Command struct {
	Shell string
	Argv  []string
}

// IsZero reports whether no command was given.
func (c Command) IsZero() bool { return c.Shell == "" && len(c.Argv) == 0 }

// String renders the command for display.
func (c Command) String() string {
	if c.Shell != "" {
		return c.Shell
	}
	return strings.Join(c.Argv, " ")
}

// Retry is a task's retry policy: the delay before retry n (n starting at 1) is
// min(Backoff * Multiplier^(n-1), MaxBackoff), spread by ±Jitter (a fraction).
//
// Parse fills in the defaults for fields a file leaves out, so a parsed policy
// is complete and an explicit zero (jitter: 0, backoff: 0s) keeps its meaning.
// The delay itself is computed by the engine (engine.RetryPolicy.Delay).
type Retry struct {
	Attempts   int      `yaml:"attempts" doc:"Total attempts including the first (1 means no retry)." required:"true" min:"1" aka:"max_attempts,count,times,limit,retries"`
	Backoff    Duration `yaml:"backoff,omitempty" doc:"Delay before the first retry. Default 10s." aka:"delay,interval,wait"`
	MaxBackoff Duration `yaml:"max_backoff,omitempty" doc:"Upper bound of the delay, before jitter. Default 10m." aka:"max_delay,max_interval,max_wait"`
	Multiplier float64  `yaml:"multiplier,omitempty" doc:"Growth factor of the delay per retry, at least 1 (1 means a constant delay). Default 2." min:"1" aka:"factor,backoff_factor,exponent"`
	Jitter     float64  `yaml:"jitter,omitempty" doc:"Random spread of each delay as a fraction, 0 to 1 (0.2 means ±20%). Default 0.1." min:"0" max:"1"`
	// DataMissingExitCodes are exit statuses by which a task says its input
	// is not there yet: with repair.on_data, a run that failed so is
	// repaired once the task succeeds when tried again.
	DataMissingExitCodes []int `yaml:"data_missing_exit_codes,omitempty" doc:"Exit statuses by which the task says its input is missing (such as 75). With the pipeline's repair: {on_data: true}, a run that failed with one of them is not given up: the task is tried again every repair.poke until it succeeds or repair.until, and the run goes on from there." aka:"missing_data_exit_codes,data_missing_codes"`
}

// Repair is a pipeline's self-healing policy.
type Repair struct {
	OnData bool     `yaml:"on_data" doc:"Watch for the missing data of a failed run (the condition of the wait that timed out; for a task that exited with a data-missing code, the task itself) and retry the failed part of the run when it arrives. false turns repair off." aka:"data,when_data_arrives"`
	Until  Duration `yaml:"until,omitempty" doc:"Longest time after the failure to keep watching. Default: until the run's deadline if it has one, else 24h." aka:"for,max_wait,timeout"`
	Poke   Duration `yaml:"poke,omitempty" doc:"Time between checks while watching. Default: the wait's own poke interval; 1m for a task tried again." aka:"every,interval"`
}

// DefaultRepairUntil is how long a repair watches when the pipeline gives
// no until and the run has no deadline.
const DefaultRepairUntil = 24 * time.Hour

// DefaultRepairPoke is how often a repair tries again a task that exited
// with a data-missing code, when the pipeline gives no poke.
const DefaultRepairPoke = time.Minute

// Defaults of the retry policy: Parse fills them in for fields a file leaves
// out.
const (
	DefaultBackoff    = 10 * time.Second
	DefaultMaxBackoff = 10 * time.Minute
	DefaultMultiplier = 2.0
	DefaultJitter     = 0.1
)

// Duration is a time.Duration written in pipeline files as a Go duration string.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders the duration like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Error is one problem found in a pipeline file, located at line:col (1-based;
// zero when unknown).
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	// Pipeline is the name the file declares, when LoadDir could read it
	// from a file that failed to load; "" otherwise.
	Pipeline string
	// Err is the underlying cause when there is one (a file that cannot be
	// read), so errors.Is(err, fs.ErrNotExist) works through an ErrorList.
	Err error
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Error renders the problem as file:line:col: message, the form editors and
// CI annotators recognise.
func (e *Error) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	default:
		return e.Msg
	}
}

// ErrorList is every problem found in one or more files, in file and position order.
type ErrorList []*Error

// Unwrap gives errors.Is and errors.As access to every entry.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sorted orders the list by file and position and drops exact repeats (an
// aliased YAML node can produce the same error once per use).
func (l ErrorList) sorted() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return slices.CompactFunc(l, func(a, b *Error) bool {
		return a.File == b.File && a.Line == b.Line && a.Col == b.Col && a.Msg == b.Msg
	})
}

// Error renders one problem per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}
