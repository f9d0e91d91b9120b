package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Attack modes of AttackConfig.Mode: how a slow connection holds on to the server.
const (
	// AttackHeaders sends a request's header section one byte at a time (slowloris).
	AttackHeaders = "headers"
	// AttackBody sends complete headers of an unsigned POST announcing an 8 MiB body,
	// then the body one byte at a time.
	AttackBody = "body"
	// AttackMixed splits the connections between the two.
	AttackMixed = "mixed"
)

// AttackConfig is a slow-connection attack run beside the load, to measure what
// unauthenticated clients can make the server hold: memory per connection, and whether
// signed requests keep being served.
type AttackConfig struct {
	// Connections is how many slow connections are kept open. Zero: no attack.
	Connections int
	// Mode is AttackHeaders, AttackBody or AttackMixed (zero: mixed).
	Mode string
	// Interval is the time between two bytes on a connection. Zero: 1s.
	Interval time.Duration
}

// AttackReport says what the attack did.
type AttackReport struct {
	Connections int    `json:"connections"`
	Mode        string `json:"mode"`
	// Opened counts connections opened (a closed one is reopened).
	Opened int64 `json:"opened"`
	// ClosedByServer counts connections the server closed or answered.
	ClosedByServer int64 `json:"closed_by_server"`
	// Answers counts the HTTP answers the attackers got, by status.
	Answers map[string]int64 `json:"answers"`
	// BytesSent is what the attackers sent in all.
	BytesSent int64 `json:"bytes_sent"`
}

// runAttack keeps cfg.Connections slow connections to the host of target until ctx
// ends, and reports.
func runAttack(ctx context.Context, target string, cfg AttackConfig) (*AttackReport, error) {
	if cfg.Mode == "" {
		cfg.Mode = AttackMixed
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	rep := &AttackReport{Connections: cfg.Connections, Mode: cfg.Mode, Answers: map[string]int64{}}
	var (
		opened, closed, sent atomic.Int64
		mu                   sync.Mutex
		wg                   sync.WaitGroup
	)
	for i := 0; i < cfg.Connections; i++ {
		mode := cfg.Mode
		if mode == AttackMixed {
			mode = AttackHeaders
			if i%2 == 1 {
				mode = AttackBody
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				status, n, err := slowRequest(ctx, addr, u.Path, u.Host, mode, cfg.Interval)
				sent.Add(n)
				if err == nil || status != "" {
					closed.Add(1)
				}
				if status != "" {
					mu.Lock()
					rep.Answers[status]++
					mu.Unlock()
				}
				opened.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(cfg.Interval): // then come back, as slowly
				}
			}
		}()
	}
	wg.Wait()
	rep.Opened, rep.ClosedByServer, rep.BytesSent = opened.Load(), closed.Load(), sent.Load()
	return rep, nil
}

// slowRequest sends one slow request on a new connection until the server answers or
// closes it, or ctx ends. It returns the answer's status ("" for none) and the bytes
// sent.
func slowRequest(ctx context.Context, addr, path, host, mode string, every time.Duration) (string, int64, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- ""
			return
		}
		resp.Body.Close()
		answered <- fmt.Sprint(resp.StatusCode)
	}()

	var pending []byte
	var trickle bool
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n", path, host)
	switch mode {
	case AttackBody:
		// Complete, unsigned headers announcing a large body; then the body, slowly.
		if _, err := conn.Write([]byte(head + "Content-Length: 8388608\r\n\r\n")); err != nil {
			return "", 0, err
		}
		trickle = true
	default:
		pending = []byte(head + "X-Slow: ")
	}
	var n int64
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case s := <-answered:
			return s, n, nil
		case <-ctx.Done():
			return "", n, nil
		case <-t.C:
		}
		b := []byte{'a'}
		if !trickle && i < len(pending) {
			b = pending[i : i+1]
		}
		if _, err := conn.Write(b); err != nil {
			select {
			case s := <-answered:
				return s, n, nil
			case <-time.After(time.Second):
				return "", n, nil
			}
		}
		n++
	}
}
