"""URLs that must never receive a token for the route ``ROUTE_URL``.

Front-end tests reuse this: configure one route for ``ROUTE_URL`` (any account) and assert each
URL here gets nothing (no token, no password on stdout). Plain data, no pytest imports.
"""

ROUTE_URL = "https://dev.azure.com/contoso/"

HOSTILE_URLS = [
    "https://dev.azure.com.evil.example/contoso/",      # routed host as a prefix of another host
    "https://DEV.AZURE.COM.evil.example/contoso/",      # same, upper case
    "http://dev.azure.com/contoso/",                    # plain http
    "ftp://dev.azure.com/contoso/",                     # another scheme
    "https:dev.azure.com/contoso/",                     # no '//': not an authority at all
    "https://dev.azure.com@evil.example/contoso/",      # routed host as the user name
    "https://dev.azure.com:443@evil.example/contoso/",  # routed host:port as user:password
    "https://user:pw@dev.azure.com/contoso/",           # userinfo on the right host
    "https://evil.example/dev.azure.com/contoso/",      # routed host in the path
    "https://evil.example#@dev.azure.com/contoso/",     # routed host after a fragment
    "https://evil.example?@dev.azure.com/contoso/",     # routed host after a query
    "https://dev.azure.com:444/contoso/",               # another port
    "https://dev.azure.com:/contoso/",                  # empty port
    "https://dev.azure.com:99999/contoso/",             # port out of range
    "https://dev.azure.com:+443/contoso/",              # port with a sign
    "https://dev.azure.com/contosoevil/",               # prefix not on a segment boundary
    "https://dev.azure.com/contoso../x",                # same, with dots
    "https://dev.azure.com/contoso/../other/",          # dot segments climb out of the prefix
    "https://dev.azure.com/contoso/x/../../other/",     # two levels
    "https://dev.azure.com/contoso/%2e%2e/other/",      # encoded dot segment
    "https://dev.azure.com/contoso/%2E%2E/other/",      # encoded dot segment, upper case
    "https://dev.azure.com/contoso//../other/",         # '//' with '..': servers disagree
    "https://dev.azure.com\\@evil.example/contoso/",    # backslash: WHATWG parsers read it as '/'
    "https://dev.azure.com/contoso\\..\\other/",        # backslash in the path
    "https://dev.azure.com/contoso%5c..%5cother/",      # encoded backslash
    "https://dev.azure.com/contoso%2f../x",             # encoded slash changes segment bounds
    "https://dev.azure.com/contoso%2F..%2Fother/",      # encoded slash, upper case
    "https://dev.azure.com/contoso/\r\nhost=evil.example",  # raw CR LF (credential injection)
    "https://dev.azure.com/contoso/\nhost=evil.example",    # raw LF
    "https://dev.azure.com/contoso/\x00",               # raw NUL
    "https://dev.azure.com/contoso/%0d%0ahost=evil",    # encoded CR LF
    "https://dev.azure.com/contoso/%0a",                # encoded LF
    "https://dev.azure.com/contoso/%00/x",              # encoded NUL
    "https://dev.azure.com/contoso/%7f",                # encoded DEL
    "https://dev.azure.com/contoso/\t",                 # raw tab
    " https://dev.azure.com/contoso/",                  # leading space
    "https://dev.azure.com /contoso/",                  # space in the authority
    "https://dev.azure.com/contoso/%zz",                # malformed percent-encoding
    "https://dev.azure.com/contoso/%ff",                # not UTF-8 once decoded
    "https://dev.\u0430zure.com/contoso/",              # Cyrillic 'а' homoglyph
    "https://\uff44\uff45\uff56.azure.com/contoso/",    # fullwidth 'dev' (IDNA maps it: lossy)
    "https://dev.azure.com\u00ad/contoso/",             # soft hyphen, dropped by IDNA: lossy
    "https://dev.azure.com\u3002evil.example/contoso/",  # ideographic full stop as a dot
    "https://dev.azure.com\uff0fcontoso/",              # fullwidth solidus inside the host
    "https://dev.azure.com%2eevil.example/contoso/",    # percent-encoding in the host
    "https://dev.azure.com../contoso/",                 # empty label
    "https:///contoso/",                                # empty host
    "https://[::1]/contoso/",                           # loopback IPv6, not the routed host
    "https://127.0.0.1/contoso/",                       # loopback IPv4
    "https://dev.azure.com/contoso/" + "a" * 9000,      # over-long
    "//dev.azure.com/contoso/",                         # scheme-relative
    "dev.azure.com/contoso/",                           # no scheme
]
