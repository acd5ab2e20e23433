// HTTP/2 clients for the tests, on Go's net/http: over TLS with the
// standard library's built-in HTTP/2 (ALPN), or h2c with prior knowledge
// through golang.org/x/net/http2 (Debian's golang-golang-x-net-dev). Go's
// client does what real HTTP/2 clients do at a GOAWAY: it opens a new
// connection and retries the requests the server says it did not process
// (a POST too, its body being replayable). Those retries are counted (a
// request that got a second connection, seen with httptrace). Nothing else
// is retried: any error the client returns is a failed request.
//
// Each of CLIENTS goroutines sends `GET /` and `POST /echo` in turn on one
// shared pooled transport, pausing 0-300 ms between requests (MODE pooled)
// or not at all (MODE back-to-back), until STOP_FILE exists, then prints
//
//	{"ok": n, "failed": n, "retried": n, "errors": [...first 20...],
//	 "pids": {"pid": n}, "proto": {"HTTP/2.0": n}}
//
// usage: h2_clients (tls CAFILE | h2c) BASE_URL CLIENTS MODE STOP_FILE
//
// Built offline: GO111MODULE=off GOPATH=/usr/share/gocode go build
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

type totals struct {
	sync.Mutex
	Ok      int            `json:"ok"`
	Failed  int            `json:"failed"`
	Retried int            `json:"retried"`
	Errors  []string       `json:"errors"`
	Pids    map[string]int `json:"pids"`
	Proto   map[string]int `json:"proto"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "h2_clients: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	var transport http.RoundTripper
	switch {
	case len(args) == 6 && args[0] == "tls":
		pem, err := os.ReadFile(args[1])
		if err != nil {
			fail("%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("no certificate in %s", args[1])
		}
		transport = &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 100,
		}
		args = args[2:]
	case len(args) == 5 && args[0] == "h2c":
		transport = &http2.Transport{
			AllowHTTP: true,
			DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) {
				return net.Dial(network, addr)
			},
		}
		args = args[1:]
	default:
		fail("usage: h2_clients (tls CAFILE | h2c) BASE_URL CLIENTS MODE STOP_FILE")
	}
	base, mode, stop := args[0], args[2], args[3]
	clients, err := strconv.Atoi(args[1])
	if err != nil {
		fail("CLIENTS: %v", err)
	}
	client := &http.Client{Transport: transport, Timeout: 15 * time.Second}
	t := &totals{Pids: map[string]int{}, Proto: map[string]int{}, Errors: []string{}}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(seed int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(seed)))
			for n := 0; ; n++ {
				if _, err := os.Stat(stop); err == nil {
					return
				}
				ok, pid, proto, why, conns := one(client, base, n, seed, rng)
				t.Lock()
				if conns > 1 {
					t.Retried++
				}
				if ok {
					t.Ok++
				} else {
					t.Failed++
					if len(t.Errors) < 20 {
						t.Errors = append(t.Errors, why)
					}
				}
				if pid != "" {
					t.Pids[pid]++
				}
				if proto != "" {
					t.Proto[proto]++
				}
				t.Unlock()
				if mode == "pooled" {
					time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
				} else if !ok {
					// A server that is gone is not asked in a busy loop.
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(i)
	}
	wg.Wait()
	out, _ := json.Marshal(t)
	fmt.Println(string(out))
}

// one request: GET / on even turns (its answer names the pid), POST /echo
// on odd ones (its answer must be the body sent).
func one(client *http.Client, base string, n, seed int, rng *rand.Rand) (bool, string, string, string, int32) {
	var conns int32
	ok, pid, proto, why := send(client, base, n, seed, rng, &conns)
	return ok, pid, proto, why, atomic.LoadInt32(&conns)
}

// send makes the request, counting in conns the connections it was given
// (more than one: the transport retried it on another).
func send(client *http.Client, base string, n, seed int, rng *rand.Rand, conns *int32) (bool, string, string, string) {
	var req *http.Request
	var body string
	var err error
	if n%2 == 0 {
		req, err = http.NewRequest("GET", base+"/", nil)
	} else {
		body = strings.Repeat(fmt.Sprintf("%d-%d ", seed, n), 1+rng.Intn(200))
		// A bytes.Reader body: net/http can replay it on a new connection.
		req, err = http.NewRequest("POST", base+"/echo", bytes.NewReader([]byte(body)))
	}
	if err != nil {
		return false, "", "", err.Error()
	}
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { atomic.AddInt32(conns, 1) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := client.Do(req)
	if err != nil {
		return false, "", "", err.Error()
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, "", resp.Proto, "reading the answer: " + err.Error()
	}
	if resp.StatusCode != 200 {
		return false, "", resp.Proto, fmt.Sprintf("status %d: %.200s", resp.StatusCode, got)
	}
	if n%2 == 1 {
		if string(got) != body {
			return false, "", resp.Proto, "echo answered another body"
		}
		return true, "", resp.Proto, ""
	}
	text := string(got)
	i := strings.Index(text, " pid ")
	if !strings.HasPrefix(text, "handoff ") || i < 0 {
		return false, "", resp.Proto, fmt.Sprintf("unexpected answer %.200q", text)
	}
	return true, strings.Fields(text[i+5:])[0], resp.Proto, ""
}
