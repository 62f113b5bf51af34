package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrorBody is the JSON of every error response, so clients print one message.
type ErrorBody struct {
	Error string `json:"error"`
}

// httpError carries the status code an endpoint wants for a failure; any
// other error is a 500 whose details stay in the log.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, format, args...)
}

func notFound(what string) error { return errorf(http.StatusNotFound, "%s not found", what) }

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		if he.code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="backbeat"`)
		}
		writeJSON(w, he.code, ErrorBody{Error: he.msg})
		return
	}
	writeJSON(w, http.StatusInternalServerError, ErrorBody{Error: "internal error"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// maxJSONBody bounds request bodies other than uploads.
const maxJSONBody = 1 << 20

// readJSON decodes a request body strictly: unknown fields are a 400 that
// names the field, so a typo is not silently ignored. An empty body leaves v
// as it is when optional is set.
func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF) && optional:
			return nil
		case errors.Is(err, io.EOF):
			return badRequest("request body is empty: want a JSON object")
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes", maxJSONBody)
		case isTimeout(err):
			return errorf(http.StatusRequestTimeout, "request body too slow: it did not arrive in time")
		default:
			return badRequest("invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if dec.More() {
		return badRequest("invalid JSON body: more than one value")
	}
	return nil
}
