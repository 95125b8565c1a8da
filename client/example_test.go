package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A device session over WebSocket against `parley serve` on its default
// ports (make run): log in over HTTP, dial, send, and print every message
// of every conversation once, in order.
func Example() {
	ctx := context.Background()
	api := rest.New("http://127.0.0.1:8080")
	sess, err := api.Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "ana", Password: "correct horse battery", DeviceName: "laptop"})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{
		Dial:     client.WebSocket("ws://127.0.0.1:8080/v1/ws"),
		Token:    func(context.Context) (string, error) { a, _ := api.Tokens(); return a, nil },
		DeviceID: sess.Device.ID,
		OnMessage: func(m *syncpb.Message) {
			fmt.Printf("%s #%d %s: %s\n", m.ConvId, m.Seq, m.SenderUserId, m.Body)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	convs, err := api.Conversations(ctx)
	if err != nil || len(convs) == 0 {
		log.Fatal("no conversation to write to: ", err)
	}
	ack, err := c.Send(ctx, &syncpb.SendRequest{ConvId: convs[0].ID, Body: []byte("hello")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as seq", ack.Seq)
	// Save c.Watermarks() when the app stops and pass them back in
	// Config.Watermarks: the next session resumes from there.
}

// Raw QUIC (phones), trusting the edge's self-signed dev certificate by
// its SHA-256 hash, which the edge publishes at
// http://<edge>/.well-known/parley/cert-hashes. After a network change the
// app calls Migrate: the connection moves to a new UDP socket, or, if it
// cannot, the client reconnects and resumes; no message is lost or shown
// twice either way.
func ExampleQUIC() {
	var certHash [32]byte // from /.well-known/parley/cert-hashes
	token := func(context.Context) (string, error) { return "<access token>", nil }
	c, err := client.Dial(context.Background(), client.Config{
		Dial:  client.QUIC("127.0.0.1:8443", client.QUICOptions{TLS: client.PinnedTLS(certHash)}),
		Token: token,
		// Unanswered sends survive an app restart.
		OutboxPath: "/var/lib/myapp/parley-outbox",
		OnAck: func(req *syncpb.SendRequest, ack *syncpb.SendAck, err error) {
			log.Printf("queued message %s: seq %d, err %v", req.ClientMsgId, ack.GetSeq(), err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Wi-Fi went away, cellular came up:
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Migrate(ctx); err != nil {
		log.Printf("migration failed (%v): reconnecting and resuming", err)
	}
}

// Browsers use WebTransport; Go programs can too. Failover moves to the
// next edge when one dies or drains.
func ExampleFailover() {
	opts := client.QUICOptions{} // an edge with a WebPKI certificate
	dial := client.Failover(
		client.WebTransport("https://edge-1.example.com:8443/v1/wt", opts),
		client.WebTransport("https://edge-2.example.com:8443/v1/wt", opts),
		client.WebSocket("wss://edge-1.example.com/v1/ws"), // where UDP is blocked
	)
	c, err := client.Dial(context.Background(), client.Config{Dial: dial,
		Token: func(context.Context) (string, error) { return "<access token>", nil }})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

// Receipts and unread counts across a user's devices: the client reports
// delivery by itself, the app reports reads, and reads made on the user's
// other devices move this device's read position (clearing its badge).
// Senders see members' delivered/read positions in OnReceipt; in large
// groups they get aggregate counts instead (UserId empty, Count set).
func ExampleClient_Receipt() {
	token := func(context.Context) (string, error) { return "<access token>", nil }
	var c *client.Client
	c, err := client.Dial(context.Background(), client.Config{
		Dial:            client.WebSocket("ws://127.0.0.1:8080/v1/ws"),
		Token:           token,
		ReportDelivered: true,
		OnReceipt: func(u *syncpb.ReceiptUpdate) {
			switch {
			case u.UserId == "":
				fmt.Printf("%s: %d members at #%d (%v)\n", u.ConvId, u.Count, u.Seq, u.Type)
			default:
				fmt.Printf("%s: %s at #%d (%v)\n", u.ConvId, u.UserId, u.Seq, u.Type)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// The user opened a conversation and saw up to #42.
	if err := c.Receipt(context.Background(), "c_team", 42, syncpb.ReceiptType_RECEIPT_TYPE_READ); err != nil {
		log.Fatal(err)
	}
	for conv, n := range c.Unread() {
		fmt.Println(conv, "unread:", n)
	}
}

// Typing indicators: say "typing" while the user types (renewing every
// few seconds; the edge takes at most 2 a second per device), "stopped"
// when they stop. OnTyping shows who types where; an indicator that is
// not renewed ends by itself (OnTyping gets Typing false), so a lost
// "stopped" never leaves "ana is typing…" on screen. Over QUIC and
// WebTransport indicators travel as datagrams, over WebSocket as frames.
func ExampleClient_Typing() {
	typing := map[string]bool{} // "conv/user" -> typing, shown in the UI
	c, err := client.Dial(context.Background(), client.Config{
		Dial:  client.WebTransport("https://127.0.0.1:8443/v1/wt", client.QUICOptions{}),
		Token: func(context.Context) (string, error) { return "<access token>", nil },
		OnTyping: func(t *syncpb.Typing) { // calls are serialized
			typing[t.ConvId+"/"+t.UserId] = t.Typing
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	conv := "c_team"
	keystrokes := time.NewTicker(3 * time.Second) // while the user keeps typing
	defer keystrokes.Stop()
	for range 3 {
		if err := c.Typing(ctx, conv, true); err != nil {
			log.Print(err) // best effort: ErrNotConnected while offline
		}
		<-keystrokes.C
	}
	_ = c.Typing(ctx, conv, false) // sent the message, or cleared the box
}

// Presence: OnPresence gets the state of everyone this user may watch (the
// members of its conversations) at each connect, then their changes. A
// contacts screen can narrow that to the users it shows, and widen it back
// with no arguments.
func ExampleClient_Presence() {
	ctx := context.Background()
	token := func(context.Context) (string, error) { return "<access token>", nil }
	c, err := client.Dial(ctx, client.Config{
		Dial:  client.WebSocket("ws://127.0.0.1:8080/v1/ws"),
		Token: token,
		OnPresence: func(p *syncpb.PresenceUpdate) {
			if p.Online {
				fmt.Println(p.UserId, "is online")
			} else {
				fmt.Println(p.UserId, "was last seen", time.UnixMilli(p.LastSeenUnixMs))
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	states, err := c.Presence(ctx, "<user id of bo>", "<user id of cy>")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range states {
		fmt.Println(p.UserId, "online:", p.Online)
	}
}
