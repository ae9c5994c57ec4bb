package artifact

// File is one output file kept in the artifact store: the path it had
// under the directory of the attempt that wrote it (relative,
// slash-separated), and its content's digest ("sha256:<hex>").
type File struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode,omitempty"` // permission bits; 0 means 0644
}

// Need is a file of a task's need to place before an attempt starts:
// under the attempt's artifacts directory, at Need/Path.
type Need struct {
	Need string `json:"need"` // the need's task id
	File
}
