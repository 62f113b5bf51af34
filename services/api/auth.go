package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"gorm.io/gorm"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/store"
)

// caller is who a request comes from: a user (through one of their API keys)
// or an operator (through the admin key).
type caller struct {
	UserID string
	Admin  bool
}

// owns reports whether the caller may see and act on a video of userID;
// operators may act on every video.
func (c caller) owns(userID string) bool { return c.Admin || c.UserID == userID }

// HashKey is how API keys are stored: the hex SHA-256, so a leaked database
// does not leak usable keys. Keys are 256-bit random, so no salt is needed.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewKey returns a fresh random API key (32 bytes, hex).
func NewKey() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// CreateAPIKey mints a key for an existing user and stores its hash; the
// plain key is returned once and never stored. The dev stack and the admin
// endpoint both use it.
func CreateAPIKey(ctx context.Context, st *store.Store, userID, name string) (string, error) {
	key := NewKey()
	if err := AddAPIKey(ctx, st, userID, name, key); err != nil {
		return "", err
	}
	return key, nil
}

// AddAPIKey stores the hash of a key chosen by the caller (a dev stack that
// keeps its key across restarts); adding the same key twice is harmless.
func AddAPIKey(ctx context.Context, st *store.Store, userID, name, key string) error {
	if len(key) < 16 {
		return errors.New("api key must be at least 16 characters")
	}
	if _, err := st.GetUser(ctx, userID); err != nil {
		return fmt.Errorf("api key for %s: %w", userID, err)
	}
	k := store.APIKey{Hash: HashKey(key), UserID: userID, Name: name}
	if err := st.DB.WithContext(ctx).Where(store.APIKey{Hash: k.Hash}).FirstOrCreate(&k).Error; err != nil {
		return fmt.Errorf("store api key for %s: %w", userID, err)
	}
	if k.UserID != userID {
		return fmt.Errorf("api key already belongs to another user")
	}
	return nil
}

// authenticate resolves the bearer token to a caller or returns a 401.
func (s *Service) authenticate(r *http.Request) (caller, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return caller{}, errorf(http.StatusUnauthorized, "missing API key: send Authorization: Bearer <key>")
	}
	if s.cfg.AdminKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminKey)) == 1 {
		return caller{Admin: true}, nil
	}
	var k store.APIKey
	err := s.store.DB.WithContext(r.Context()).Where("hash = ?", HashKey(token)).First(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return caller{}, errorf(http.StatusUnauthorized, "invalid API key")
	}
	if err != nil {
		return caller{}, fmt.Errorf("look up api key: %w", err)
	}
	return caller{UserID: k.UserID}, nil
}

// MeResponse is GET /v1/me.
type MeResponse struct {
	UserID  string `json:"user_id,omitempty"`
	Balance int64  `json:"balance"`
	Bundle  string `json:"bundle,omitempty"`
	Admin   bool   `json:"admin"`
}

func (s *Service) me(w http.ResponseWriter, r *http.Request, c caller) error {
	if c.Admin {
		writeJSON(w, http.StatusOK, MeResponse{Admin: true})
		return nil
	}
	u, err := s.store.GetUser(r.Context(), c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("user " + c.UserID)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MeResponse{UserID: u.ID, Balance: u.Balance, Bundle: u.Bundle})
	return nil
}

// CreateUserRequest is POST /v1/admin/users.
type CreateUserRequest struct {
	ID      string `json:"id"`
	Balance int64  `json:"balance"`
	Bundle  string `json:"bundle"`
	Email   string `json:"email,omitempty"`
	// KeyName labels the key minted for the user (default "default").
	KeyName string `json:"key_name,omitempty"`
}

// CreateUserResponse carries the only copy of the new key.
type CreateUserResponse struct {
	UserID  string `json:"user_id"`
	APIKey  string `json:"api_key"`
	Created bool   `json:"created"`
	Balance int64  `json:"balance"`
	Bundle  string `json:"bundle"`
}

var bundleRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// createUser creates a user (or keeps an existing one as it is) and mints a
// new API key for it, so the same call also issues extra keys.
func (s *Service) createUser(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.Admin {
		return errorf(http.StatusForbidden, "admin key required")
	}
	var req CreateUserRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if err := ids.ValidateUserID(req.ID); err != nil {
		return badRequest("%v", err)
	}
	if req.Bundle == "" {
		req.Bundle = "free"
	}
	if !bundleRE.MatchString(req.Bundle) {
		return badRequest("invalid bundle %q", req.Bundle)
	}
	if req.Balance < 0 {
		return badRequest("balance must not be negative")
	}
	if req.KeyName == "" {
		req.KeyName = "default"
	}
	ctx := r.Context()
	_, err := s.store.GetUser(ctx, req.ID)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return err
	}
	if created {
		u := store.User{ID: req.ID, Balance: req.Balance, Bundle: req.Bundle, Email: req.Email}
		if err := s.store.UpsertUser(ctx, u); err != nil {
			return err
		}
	}
	u, err := s.store.GetUser(ctx, req.ID)
	if err != nil {
		return err
	}
	key, err := CreateAPIKey(ctx, s.store, u.ID, req.KeyName)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, CreateUserResponse{UserID: u.ID, APIKey: key, Created: created, Balance: u.Balance, Bundle: u.Bundle})
	return nil
}
