"""Who the caller is: bearer-token verification and the permissions its claims grant.

Hides the JOSE library, the issuer's key set (fetched lazily, cached, refreshed on an
unknown `kid` at a bounded rate) and how an identity provider spells project roles in
its claims. Callers get a `Principal` or a domain error (`Unauthorized`, or
`UpstreamUnavailable` when the issuer's keys cannot be fetched).
"""
