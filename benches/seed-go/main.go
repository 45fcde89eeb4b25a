// The seed's design as a peer for benches/load.sh: the Go + Gin service the
// article in ../shared/seed/ describes, written from it so minigate can be
// measured beside what the project's users would otherwise write.
//
// The article's login handler takes {"code"}, exchanges it at
// jscode2session, and answers a token; its middleware checks that token on
// every request. Two modes, as the article offers both:
//
//	-mode jwt    the token is a JWT (ES256, signed with the current key of a
//	             minigate key set, so minigate's tokens verify here too; the
//	             article's JWT example is HS256 in Node, but a gateway that
//	             hands tokens to other services signs asymmetrically, as
//	             minigate does), verified on every request: signature, alg,
//	             exp, iss, aud
//	-mode redis  the article's primary design: a UUID token, `SET token
//	             openid EX 2592000` at login, `GET token` on every request
//
// An authenticated request is proxied to -upstream with the openid in
// X-Auth-Openid (every client X-Auth-* header removed first); without a
// valid token the answer is 401. Gin runs in release mode without its
// per-request logger (minigate logs no line per request either); workers
// are GOMAXPROCS, set by the caller.
//
// Two departures from the article's code, both in the peer's favour and
// both what a careful Go developer would write: the code exchange's client
// keeps up to 256 idle connections to the platform (net/http's default of 2
// per host would open a new connection for most of 64 concurrent logins),
// and errors from the exchange are answered (the article ignores them and
// would dereference a nil response). Built offline from Debian's packages
// (GOPATH mode over /usr/share/gocode): gin 1.8, golang-jwt v4, go-redis
// v5 (gopkg.in/redis.v5, the go-redis Debian ships: the article's calls
// without the context argument), google/uuid.
package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt"
	"github.com/google/uuid"
	"gopkg.in/redis.v5"
)

type keySet struct {
	Keys []struct {
		Kid        string `json:"kid"`
		Alg        string `json:"alg"`
		State      string `json:"state"`
		PrivateKey string `json:"private_key"`
	} `json:"keys"`
}

// currentKey reads the current ES256 key of a minigate key set.
func currentKey(path string) (string, *ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var set keySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return "", nil, err
	}
	for _, k := range set.Keys {
		if k.State != "current" || k.Alg != "ES256" {
			continue
		}
		der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.PrivateKey, "="))
		if err != nil {
			if der, err = base64.StdEncoding.DecodeString(k.PrivateKey); err != nil {
				return "", nil, fmt.Errorf("private_key: %v", err)
			}
		}
		key, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return "", nil, err
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return "", nil, fmt.Errorf("key %s is not ECDSA", k.Kid)
		}
		return k.Kid, ec, nil
	}
	return "", nil, fmt.Errorf("%s: no current ES256 key", path)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18086", "address to serve on")
	mode := flag.String("mode", "jwt", "jwt or redis")
	upstream := flag.String("upstream", "http://127.0.0.1:18081", "where authenticated requests go")
	wechat := flag.String("wechat", "https://api.weixin.qq.com", "jscode2session's base URL")
	keysetPath := flag.String("keyset", "", "a minigate keyset.json (jwt mode)")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address (redis mode)")
	issuer := flag.String("issuer", "https://bench.minigate", "JWT iss")
	audience := flag.String("audience", "api", "JWT aud")
	tlsCert := flag.String("tls-cert", "", "PEM certificate: serve HTTPS (HTTP/2 and HTTP/1.1)")
	tlsKey := flag.String("tls-key", "", "PEM key for -tls-cert")
	flag.Parse()

	appid, secret := "wx0123456789abcdef", os.Getenv("LOAD_WECHAT_SECRET")
	exchange := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
	}

	var kid string
	var key *ecdsa.PrivateKey
	var rdb *redis.Client
	switch *mode {
	case "jwt":
		var err error
		if kid, key, err = currentKey(*keysetPath); err != nil {
			log.Fatalf("keyset: %v", err)
		}
	case "redis":
		// go-redis v8+'s default pool (10 per GOMAXPROCS), which the
		// article's context-taking calls imply; v5's default is 10.
		rdb = redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: 10 * runtime.GOMAXPROCS(0)})
		if err := rdb.Ping().Err(); err != nil {
			log.Fatalf("redis: %v", err)
		}
	default:
		log.Fatalf("-mode: jwt or redis, not %q", *mode)
	}

	// issue makes the token a login answers: a signed JWT, or a UUID stored
	// in Redis for 30 days.
	issue := func(openid string) (string, error) {
		if rdb != nil {
			token := uuid.New().String()
			return token, rdb.Set(token, openid, 30*24*time.Hour).Err()
		}
		now := time.Now()
		claims := jwt.MapClaims{
			"iss": *issuer, "aud": *audience, "sub": openid,
			"iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix(),
		}
		t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		t.Header["kid"] = kid
		return t.SignedString(key)
	}
	// identify finds the openid a token stands for, or "".
	parser := jwt.Parser{ValidMethods: []string{"ES256"}}
	identify := func(token string) string {
		if rdb != nil {
			openid, err := rdb.Get(token).Result()
			if err != nil {
				return ""
			}
			return openid
		}
		claims := jwt.MapClaims{}
		t, err := parser.ParseWithClaims(token, claims, func(*jwt.Token) (interface{}, error) {
			return &key.PublicKey, nil
		})
		if err != nil || !t.Valid || !claims.VerifyIssuer(*issuer, true) || !claims.VerifyAudience(*audience, true) {
			return ""
		}
		sub, _ := claims["sub"].(string)
		return sub
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())

	r.POST("/auth/login", func(c *gin.Context) {
		var req struct {
			Code string `json:"code"`
		}
		if err := c.ShouldBindJSON(&req); err != nil || req.Code == "" {
			c.JSON(400, gin.H{"error": "invalid request"})
			return
		}
		u := fmt.Sprintf("%s/sns/jscode2session?appid=%s&secret=%s&js_code=%s&grant_type=authorization_code",
			*wechat, appid, url.QueryEscape(secret), url.QueryEscape(req.Code))
		resp, err := exchange.Get(u)
		if err != nil {
			c.JSON(502, gin.H{"error": "code exchange failed"})
			return
		}
		defer resp.Body.Close()
		var wxResp struct {
			OpenID     string `json:"openid"`
			SessionKey string `json:"session_key"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&wxResp); err != nil || wxResp.OpenID == "" {
			c.JSON(400, gin.H{"error": "failed to get openid"})
			return
		}
		token, err := issue(wxResp.OpenID)
		if err != nil {
			c.JSON(500, gin.H{"error": "could not issue a token"})
			return
		}
		c.JSON(200, gin.H{"token": token, "openid": wxResp.OpenID})
	})

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("-upstream: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}

	// The article's middleware: no valid token, 401; else the identity
	// travels on, here to the upstream in a header.
	auth := func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		if !strings.HasPrefix(h, "Bearer ") {
			c.AbortWithStatusJSON(401, gin.H{"error": "unauthorized"})
			return
		}
		openid := identify(h[len("Bearer "):])
		if openid == "" {
			c.AbortWithStatusJSON(401, gin.H{"error": "unauthorized"})
			return
		}
		for name := range c.Request.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-auth-") {
				c.Request.Header.Del(name)
			}
		}
		c.Request.Header.Set("X-Auth-Openid", openid)
		c.Next()
	}
	r.NoRoute(auth, func(c *gin.Context) { proxy.ServeHTTP(c.Writer, c.Request) })

	srv := &http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("seed-go: %s mode on %s, GOMAXPROCS %d", *mode, *listen, runtime.GOMAXPROCS(0))
	if *tlsCert != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		log.Fatal(srv.ListenAndServeTLS(*tlsCert, *tlsKey))
	}
	log.Fatal(srv.ListenAndServe())
}
