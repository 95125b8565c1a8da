package rest

import (
	"context"
	"net/http"
	"net/url"
)

// RefreshAccess trades the refresh token for a new pair and returns the
// new access token: client.Config.Refresh for a device session.
func (c *Client) RefreshAccess(ctx context.Context) (string, error) {
	if err := c.Refresh(ctx); err != nil {
		return "", err
	}
	access, _ := c.Tokens()
	return access, nil
}

// Devices lists the user's devices, revoked ones included.
func (c *Client) Devices(ctx context.Context) ([]*Device, error) {
	var out struct {
		Devices []*Device `json:"devices"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/devices", nil, &out, true); err != nil {
		return nil, err
	}
	return out.Devices, nil
}

// RevokeDevice revokes one of the user's devices (the session's own: log
// out). Its tokens stop working at once on every edge and its live
// sessions end.
func (c *Client) RevokeDevice(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(id), nil, nil, true)
}

// ChangePassword replaces the user's password. The user's other devices
// lose their tokens and must log in again; this session keeps its own.
func (c *Client) ChangePassword(ctx context.Context, current, next string) error {
	return c.do(ctx, http.MethodPost, "/v1/me/password", map[string]string{"current_password": current, "new_password": next}, nil, true)
}
