package alertmanager

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/config"
	commoncfg "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"
)

// FirewallConfig keeps the receivers of the workspaces' definitions from reaching
// addresses an operator does not want tenants to reach (the server's own network,
// a cloud's metadata service): a definition is written by a workspace's users, and
// its webhooks, Slack, PagerDuty, SNS… URLs are dialled by the server.
type FirewallConfig struct {
	// BlockPrivateAddresses refuses connections to loopback, private (RFC 1918, fc00::/7),
	// shared (100.64.0.0/10), link-local (169.254.0.0/16 and fe80::/10, where cloud
	// metadata services answer), multicast and unspecified addresses.
	BlockPrivateAddresses bool `yaml:"block_private_addresses"`
	// BlockCIDRNetworks refuses connections to these networks.
	BlockCIDRNetworks CIDRList `yaml:"block_cidr_networks"`
}

// RegisterFlags registers the flags under "alertmanager.receivers-firewall.".
func (c *FirewallConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.BlockPrivateAddresses, "alertmanager.receivers-firewall.block-private-addresses", false,
		"Refuse notifications to loopback, private, shared (100.64.0.0/10), link-local (cloud metadata), multicast and unspecified addresses. Applies to every HTTP-based receiver (webhook, Slack, PagerDuty, OpsGenie, SNS, …), checked on the address actually dialled; not to email. While on, definitions with SNS sent by the AWS SDK's own client (use_aws_http_client, or AWS_CA_BUNDLE in the environment) do not load.")
	f.Var(&c.BlockCIDRNetworks, "alertmanager.receivers-firewall.block-cidr-networks",
		"Comma-separated networks (CIDR) HTTP-based receivers may not connect to; not email.")
}

// sharedAddressSpace is RFC 6598's 100.64.0.0/10, which netip's IsPrivate leaves out;
// a cloud's metadata service answers there too (100.100.100.200).
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// enabled says whether the firewall refuses anything.
func (c *FirewallConfig) enabled() bool {
	return c.BlockPrivateAddresses || len(c.BlockCIDRNetworks) > 0
}

// blocked says why addr may not be dialled; "" when it may.
func (c *FirewallConfig) blocked(addr netip.Addr) string {
	addr = addr.Unmap()
	if c.BlockPrivateAddresses {
		switch {
		case addr.IsLoopback():
			return "a loopback address"
		case addr.IsPrivate():
			return "a private address"
		case sharedAddressSpace.Contains(addr):
			return "a shared (carrier-grade NAT) address"
		case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
			return "a link-local address"
		case addr.IsMulticast():
			return "a multicast address"
		case addr.IsUnspecified():
			return "an unspecified address"
		}
	}
	for _, p := range c.BlockCIDRNetworks {
		if p.Contains(addr) {
			return "in the blocked network " + p.String()
		}
	}
	return ""
}

// admits refuses, while the firewall is on, the receivers the library would dial
// without its dialer: SNS through the AWS SDK's own HTTP client, which the library uses
// when use_aws_http_client is set or AWS_CA_BUNDLE is in the environment.
func (c *FirewallConfig) admits(rcv config.Receiver) error {
	if !c.enabled() {
		return nil
	}
	for _, sc := range rcv.SNSConfigs {
		switch {
		case sc.UseAWSHTTPClient:
			return errors.New("sns_configs: use_aws_http_client bypasses the receivers firewall, which is on; remove it")
		case os.Getenv("AWS_CA_BUNDLE") != "":
			return errors.New("sns_configs: with AWS_CA_BUNDLE set in the server's environment, SNS is sent by the AWS SDK's own HTTP client, which bypasses the receivers firewall; the operator must unset it (SSL_CERT_FILE serves the same purpose) or turn the firewall off")
		}
	}
	return nil
}

// httpOptions are the HTTP client options of every receiver: a dialer that checks each
// address it connects to, after name resolution, so a name that resolves to a blocked
// address (or starts to) is refused too.
func (c *FirewallConfig) httpOptions() []commoncfg.HTTPClientOption {
	if !c.enabled() {
		return nil
	}
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("receivers firewall: %q is not an IP address", host)
			}
			if why := c.blocked(ip); why != "" {
				return fmt.Errorf("receivers firewall: the connection to %s is blocked: %s", ip, why)
			}
			return nil
		},
	}
	return []commoncfg.HTTPClientOption{commoncfg.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	})}
}

// CIDRList is a comma-separated list of networks, as a flag.
type CIDRList []netip.Prefix

func (l *CIDRList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *CIDRList) Set(v string) error {
	var out CIDRList
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return fmt.Errorf("%q is not a network in CIDR notation: %w", part, err)
		}
		out = append(out, p.Masked())
	}
	*l = out
	return nil
}

// MarshalYAML writes a sequence of networks.
func (l CIDRList) MarshalYAML() (any, error) {
	out := make([]string, len(l))
	for i, p := range l {
		out[i] = p.String()
	}
	return out, nil
}

// UnmarshalYAML reads a sequence of networks or a comma-separated string.
func (l *CIDRList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return l.Set(n.Value)
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a network in CIDR notation", e.Line)
			}
			parts = append(parts, e.Value)
		}
		return l.Set(strings.Join(parts, ","))
	}
	return fmt.Errorf("line %d: want a sequence of networks", n.Line)
}
