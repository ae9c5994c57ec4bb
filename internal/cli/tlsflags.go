package cli

// TLS for the clients of a server (every command with --server, and
// `tasuki worker`), and the network settings of `tasuki server`.

import (
	"log/slog"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/server"
)

// Environment variables that stand for the TLS flags of a client.
const (
	caEnv         = "TASUKI_CA"
	clientCertEnv = "TASUKI_CLIENT_CERT"
	clientKeyEnv  = "TASUKI_CLIENT_KEY"
)

// addCAFlag registers the persistent --ca flag: every command that talks to
// a server may need to trust a private CA.
func addCAFlag(root *cobra.Command) {
	root.PersistentFlags().String("ca", "",
		"PEM file of the CA to trust for the server's TLS certificate, instead of the system's (default $"+caEnv+")")
}

// addClientCertFlags registers --cert and --key, the client certificate a
// worker presents to a server that requires mutual TLS.
func addClientCertFlags(cmd *cobra.Command) {
	cmd.Flags().String("cert", "", "PEM file of this worker's client certificate, for a server with client_ca (default $"+clientCertEnv+")")
	cmd.Flags().String("key", "", "PEM file of the key of --cert (default $"+clientKeyEnv+")")
}

// flagOrEnv is the value of the flag name if cmd has it and it is set, else
// the environment variable env.
func flagOrEnv(cmd *cobra.Command, name, env string) string {
	if f := cmd.Flag(name); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return os.Getenv(env)
}

// httpClient is the HTTP client of a command talking to a server, with the
// TLS settings its flags and environment give.
func (a *app) httpClient(cmd *cobra.Command) (*http.Client, error) {
	c := api.ClientTLS{CAFile: flagOrEnv(cmd, "ca", caEnv)}
	if cmd.Flag("cert") != nil { // only the worker presents a certificate
		c.CertFile = flagOrEnv(cmd, "cert", clientCertEnv)
		c.KeyFile = flagOrEnv(cmd, "key", clientKeyEnv)
	}
	hc, err := c.HTTPClient(slog.New(slog.NewTextHandler(a.io.Err, nil)))
	if err != nil {
		return nil, usageErr("TLS: %v", err)
	}
	return hc, nil
}

// networkFlags are the flags of `tasuki server` about the network.
type networkFlags struct {
	tlsCert, tlsKey, clientCA, clientAuth string
	allowedHosts, corsOrigins             []string
	insecureNetwork                       bool
}

func (n *networkFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&n.tlsCert, "tls-cert", "", "PEM file of the server's TLS certificate (reloaded when it changes); needs --tls-key")
	f.StringVar(&n.tlsKey, "tls-key", "", "PEM file of the key of --tls-cert")
	f.StringVar(&n.clientCA, "client-ca", "", "PEM file of the CA whose client certificates workers must present (mutual TLS)")
	f.StringVar(&n.clientAuth, "client-auth", "", "routes that need a client certificate with --client-ca: workers (default) or all")
	f.StringSliceVar(&n.allowedHosts, "allowed-hosts", nil, "host names the server is reached by, besides localhost and IP addresses (comma-separated; NAME or NAME:PORT)")
	f.StringSliceVar(&n.corsOrigins, "cors-origins", nil, "web origins allowed to call the API from a browser, e.g. https://ui.example.com (default: none)")
	f.BoolVar(&n.insecureNetwork, "insecure-network", false, "allow listening on a non-loopback address without TLS (tokens and logs cross the network in clear)")
}

// apply sets what was given on the command line over cfg. The server's
// --ca is the persistent one: the CA it trusts when forwarding to the
// leader.
func (n *networkFlags) apply(cmd *cobra.Command, cfg *server.Config) {
	f := cmd.Flags()
	set := func(name string, dst *string, v string) {
		if f.Changed(name) {
			*dst = v
		}
	}
	set("tls-cert", &cfg.TLSCert, n.tlsCert)
	set("tls-key", &cfg.TLSKey, n.tlsKey)
	set("client-ca", &cfg.ClientCA, n.clientCA)
	set("client-auth", &cfg.ClientAuth, n.clientAuth)
	if ca := cmd.Flag("ca"); ca != nil && ca.Changed {
		cfg.CA = ca.Value.String()
	}
	if f.Changed("allowed-hosts") {
		cfg.AllowedHosts = n.allowedHosts
	}
	if f.Changed("cors-origins") {
		cfg.CORSOrigins = n.corsOrigins
	}
	if f.Changed("insecure-network") {
		cfg.InsecureNetwork = n.insecureNetwork
	}
}
