package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// URLPolicy is what endpoint URLs may point at.
type URLPolicy struct {
	// AllowPrivate lets URLs resolve to loopback, private and link-local
	// addresses (SEGMENTD_WEBHOOK_ALLOW_PRIVATE); it implies AllowHTTP.
	AllowPrivate bool
	// AllowHTTP lets URLs be plain http (--webhook-allow-http).
	AllowHTTP bool
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver

	// dialPublic are addresses the sender dials as if they were public,
	// although they are blocked: set only by this package's tests, whose
	// receivers can only be on loopback, so that a "public" receiver can
	// redirect to a private one. Check does not read it.
	dialPublic map[netip.AddrPort]bool
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// blockedIP reports whether ip is an address webhooks must not reach
// unless private addresses are allowed: loopback, private, link-local,
// unspecified, multicast, carrier-grade NAT, and IPv4 in IPv6 of those.
func blockedIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() ||
		ip.IsUnspecified() || cgnat.Contains(ip) || (ip.Is4() && ip.As4()[0] == 0)
}

// errBlocked is the message of a URL or connection to a refused address.
var errBlocked = errors.New("resolves to a loopback, private or link-local address (set SEGMENTD_WEBHOOK_ALLOW_PRIVATE=true to allow)")

// Check validates an endpoint URL: absolute http(s) without credentials,
// https unless AllowHTTP or AllowPrivate, and (unless AllowPrivate) a host
// none of whose addresses is blocked. The error says what is wrong, for
// BAD_USER_INPUT.
func (p URLPolicy) Check(ctx context.Context, raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return errors.New("not an absolute URL such as https://example.com/hooks")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP && !p.AllowPrivate {
			return errors.New("https is required (start segmentd with --webhook-allow-http to allow http)")
		}
	default:
		return fmt.Errorf("scheme %q: use https", u.Scheme)
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not accepted (for SEGMENT destinations, use writeKey)")
	}
	if u.Fragment != "" {
		return errors.New("a URL with a #fragment is not accepted")
	}
	if p.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if blockedIP(ip) {
			return errBlocked
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return errBlocked
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("host %q does not resolve", host)
	}
	for _, a := range addrs {
		if blockedIP(a) {
			return errBlocked
		}
	}
	return nil
}
