// modules.js: the seams for the parts of the app that other work builds.
//
// Search is built (search.js, issue 22); attachments are being built on
// the server side (issue 21). Each is a module here with this shape, and
// the UI shows its controls only when the module is present (null:
// absent, no control is drawn, nothing is faked):
//
//   search: {
//     // query the workspace's messages the caller may read (search.js,
//     // over GET /v1/search; segments are the snippet split at its marks)
//     async query(api, { q, convId, sort, cursor }) ->
//       { hits: [{convId, seq, msgId, senderId, ts, snippet, segments: [{text, mark}]}], total, nextCursor }
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
import * as searchModule from './search.js';

export const search = searchModule;
export const attachments = null;
