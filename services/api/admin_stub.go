package api

import (
	"context"
	"net/http"
)

// Act is a stand-in until the operator actions land (admin.go): it acts on
// nothing and says so.
func (s *Service) Act(ctx context.Context, actor string, req AdminRequest) (ActionResult, error) {
	return ActionResult{}, errorf(http.StatusNotImplemented, "operator actions are not available in this build yet")
}
