package alertmanager

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify/sns"
	"gopkg.in/yaml.v3"
)

func TestFirewallBlocked(t *testing.T) {
	var private FirewallConfig
	private.BlockPrivateAddresses = true
	var cidr FirewallConfig
	if err := cidr.BlockCIDRNetworks.Set("203.0.113.0/24, 2001:db8::/32"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr          string
		private, cidr bool
	}{
		{"127.0.0.1", true, false},
		{"::1", true, false},
		{"::ffff:127.0.0.1", true, false},
		{"10.1.2.3", true, false},
		{"172.16.0.1", true, false},
		{"192.168.1.1", true, false},
		{"fd00::1", true, false},
		{"169.254.169.254", true, false}, // cloud metadata
		{"100.100.100.200", true, false}, // another cloud's
		{"100.63.255.255", false, false},
		{"fe80::1", true, false},
		{"0.0.0.0", true, false},
		{"224.0.0.1", true, false},
		{"8.8.8.8", false, false},
		{"203.0.113.7", false, true},
		{"2001:db8::5", false, true},
		{"2606:4700::1111", false, false},
	} {
		a := netip.MustParseAddr(c.addr)
		if got := private.blocked(a) != ""; got != c.private {
			t.Errorf("block-private-addresses, %s: blocked %v, want %v", c.addr, got, c.private)
		}
		if got := cidr.blocked(a) != ""; got != c.cidr {
			t.Errorf("block-cidr-networks, %s: blocked %v, want %v", c.addr, got, c.cidr)
		}
	}
	var off FirewallConfig
	if off.enabled() || off.httpOptions() != nil {
		t.Error("a firewall with nothing to block is enabled")
	}
}

func TestCIDRList(t *testing.T) {
	var l CIDRList
	if err := l.Set("10.0.0.1/8,,192.168.0.0/16"); err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "10.0.0.0/8,192.168.0.0/16" {
		t.Errorf("String() = %q", got)
	}
	if err := l.Set("10.0.0.0"); err == nil || !strings.Contains(err.Error(), "CIDR") {
		t.Errorf("a bare address: %v", err)
	}
	var cfg struct {
		F FirewallConfig `yaml:"f"`
	}
	if err := yaml.Unmarshal([]byte("f: {block_private_addresses: true, block_cidr_networks: [100.64.0.0/10, 'fc00::/7']}"), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.F.BlockPrivateAddresses || cfg.F.BlockCIDRNetworks.String() != "100.64.0.0/10,fc00::/7" {
		t.Errorf("from YAML: %+v", cfg.F)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil || !strings.Contains(string(out), "- 100.64.0.0/10") {
		t.Errorf("to YAML: %s %v", out, err)
	}
}

// With the firewall on, a webhook on the loopback interface is refused where it is
// dialled: the notification fails, counted and logged with the reason. A firewall that
// blocks another network lets it through.
func TestReceiversFirewall(t *testing.T) {
	for _, c := range []struct {
		name    string
		private bool
		cidrs   string
		blocked bool
	}{
		{"private addresses", true, "", true},
		{"loopback network", false, "127.0.0.0/8", true},
		{"another network", false, "10.0.0.0/8", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, withConfig(func(cfg *Config) {
				cfg.ReceiversFirewall.BlockPrivateAddresses = c.private
				if err := cfg.ReceiversFirewall.BlockCIDRNetworks.Set(c.cidrs); err != nil {
					t.Fatal(err)
				}
			}))
			hook := newWebhook(t)
			f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
			f.sync()
			f.postAlerts("ws-a", map[string]string{"alertname": "Firewalled"})
			if !c.blocked {
				if m := hook.next(t); joined(m.names("alertname")) != "Firewalled" {
					t.Fatalf("notification: %+v", m)
				}
				return
			}
			waitFor(t, "the refused notification counted and logged", func() bool {
				v, _ := f.metric("strata_alertmanager_notification_requests_failed_total", map[string]string{"workspace": "ws-a", "integration": "webhook"})
				return v >= 1 && strings.Contains(f.logs.String(), "receivers firewall: the connection to 127.0.0.1 is blocked")
			})
		})
	}
}

// While the firewall is on, SNS receivers the library would send through the AWS SDK's
// own HTTP client (not through the firewall's dialer) are refused.
func TestFirewallRefusesSNSOutsideIt(t *testing.T) {
	rcv := func(useAWS bool) config.Receiver {
		return config.Receiver{Name: "sns", SNSConfigs: []*sns.SNSConfig{{UseAWSHTTPClient: useAWS}}}
	}
	var on FirewallConfig
	on.BlockPrivateAddresses = true
	var off FirewallConfig
	t.Setenv("AWS_CA_BUNDLE", "")
	if err := on.admits(rcv(false)); err != nil {
		t.Errorf("SNS through the firewall: %v", err)
	}
	if err := on.admits(rcv(true)); err == nil || !strings.Contains(err.Error(), "use_aws_http_client") {
		t.Errorf("use_aws_http_client with the firewall on: %v", err)
	}
	if err := off.admits(rcv(true)); err != nil {
		t.Errorf("use_aws_http_client with the firewall off: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
	if err := on.admits(rcv(false)); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
		t.Errorf("AWS_CA_BUNDLE with the firewall on: %v", err)
	}
}
