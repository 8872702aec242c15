# Varnish in front of one Tinsel origin, for its LL-HLS (/hls/): every viewer
# of a stream asks the same URLs, so a crowd of viewers costs the origin about
# one request per part and one per playlist version. Anything else (the web
# app, /api/, WHEP) is passed to the origin as it is: give viewers the watch
# page from the origin and only the HLS host through this cache, or keep it
# on one host and let the pass below do its work.
#
# Why Varnish: a miss that many clients ask for at once is fetched once, and
# the clients waiting for it (Varnish's waiting list) are sent the bytes as
# they arrive. nginx's proxy_cache_lock also fetches once, but its waiters
# look again every 500 ms, which adds up to half a second to every part, as
# much as LL-HLS saves.
#
# Tested by server/tests/hls_cache.rs (200 players through this file).
# Varnish 7.1 or later.

vcl 4.1;

import std;

# The origin's HTTP port (tinsel serve --http-listen).
backend origin {
    .host = "127.0.0.1";
    .port = "8080";
    # The origin holds a blocking playlist request up to three target
    # durations before it answers (6 s with 2 s segments, 60 s with a
    # publisher's keyframe every 20 s), and a preload hint's part up to three
    # part durations.
    .first_byte_timeout = 65s;
    .between_bytes_timeout = 10s;
    .connect_timeout = 2s;
}

sub vcl_recv {
    if (req.url !~ "^/hls/") {
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # One object per URL for everyone: nothing a viewer sends may split the
    # cache or turn the request into a pass (the built-in VCL passes any
    # request with a Cookie or Authorization header).
    unset req.http.Cookie;
    unset req.http.Authorization;
    # Of the query, only the LL-HLS delivery directives (RFC 8216bis 6.2.5)
    # choose the answer; the origin ignores any other parameter, so the key
    # drops them (cache busters, per-viewer tokens) and sorts the rest.
    if (req.url ~ "\?") {
        set req.url = regsuball(req.url, "([?&])(?!_HLS_(?:msn|part|skip)=)[^&]*", "\1");
        set req.url = regsuball(req.url, "&{2,}", "&");
        set req.url = regsub(req.url, "\?&", "?");
        set req.url = regsub(req.url, "[?&]$", "");
        set req.url = std.querysort(req.url);
    }
    # No hash_always_miss and no pass from here on: concurrent misses for one
    # URL wait for one fetch (request collapsing).
    return (hash);
}

sub vcl_backend_response {
    if (bereq.url !~ "^/hls/") {
        return (deliver);
    }
    # Waiting clients get the bytes as the origin sends them.
    set beresp.do_stream = true;
    unset beresp.http.Set-Cookie;
    if (beresp.status >= 400) {
        # An error is kept one second, as the origin's Cache-Control says,
        # and stays a normal object. Left to the built-in VCL, an error (a
        # 503 for a blocking request that timed out; Varnish computes no TTL
        # for it) would become hit-for-miss for two minutes, and the next
        # crowd asking that URL would each go to the origin instead of
        # waiting for one fetch.
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        return (deliver);
    }
    # The TTLs are the origin's Cache-Control: a second for the plain
    # playlist, a few target durations for a blocking one (its answer holds
    # the part asked for, whenever it is asked), a year for the immutable
    # init, part and segment files. A small grace only: a stale playlist is
    # a player behind the live edge.
    set beresp.grace = 1s;
    if (bereq.url ~ "\.m3u8") {
        set beresp.grace = 0s;
        # Should an origin say nothing (Varnish would keep it 2 minutes),
        # the live playlist is still kept a second only.
        if (bereq.url !~ "[?&]_HLS_msn=" && beresp.ttl > 1s) {
            set beresp.ttl = 1s;
        }
    }
    return (deliver);
}

sub vcl_backend_error {
    if (bereq.url ~ "^/hls/") {
        # The origin is unreachable or slow: the same one-second error for
        # everyone waiting, rather than one retry each.
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
    }
}

sub vcl_deliver {
    # For debugging; Varnish sets Age from the object's age in the cache.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
