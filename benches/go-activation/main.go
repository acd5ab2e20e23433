// The seed article's service, for the restart benchmark: a net/http server on
// the listener systemd passes, taken with go-systemd's activation package.
// Like the article's, it has no graceful shutdown: SIGTERM ends it at once,
// whatever is in flight. It answers the routes the load uses, with its pid,
// and POST /echo for the pooled clients.
//
// Built offline from Debian's packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-activation .
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/activation"
)

func main() {
	listeners, err := activation.Listeners()
	if err != nil {
		log.Fatalf("cannot take sockets from systemd: %v", err)
	}
	if len(listeners) != 1 {
		log.Fatalf("expected one socket from systemd, got %d", len(listeners))
	}
	pid := os.Getpid()
	started := time.Now().UTC().Format(time.RFC3339)

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go-activation pid %d started %s\n", pid, started)
	})
	// The cost benchmark's route: examples/hello's answer.
	http.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	http.HandleFunc("/delay/", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/delay/"))
		if err != nil || ms < 0 || ms > 10000 {
			http.Error(w, `{"error":"bad delay"}`, http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"slept_ms":%d,"pid":%d}`, ms, pid)
	})
	// The pooled clients' route: the body back, as handoff's POST /echo.
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, `{"error":"POST only"}`, http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 256*1024))
		if err != nil {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	log.Fatal(http.Serve(listeners[0], nil))
}
