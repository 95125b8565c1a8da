// modules.js: the seams for the parts of the app that other work builds.
//
// Search and attachments are being built on the server side (issues 20
// and 21). When they land, each is a module here with this shape, and the
// UI shows its controls only when the module is present (null: absent, no
// control is drawn, nothing is faked):
//
//   search: {
//     // query the workspace's messages the caller may read
//     async query(api, { q, convId, cursor }) -> { hits: [{convId, seq, snippet}], nextCursor }
//   }
//   attachments: {
//     // upload a file, returning the Attachment metadata a SendRequest carries
//     async upload(api, file, { convId }) -> { id, name, contentType, size, meta }
//     // a URL the page may load for an attachment of a message it holds
//     async url(api, { convId, msgId, attachmentId }) -> string
//   }
//
// parley.js already decodes Message.attachments (metadata), and rest.js is
// where their /v1 calls go.
export const search = null;
export const attachments = null;
