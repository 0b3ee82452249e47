#!/usr/bin/env node
/*
 * receiver.js - a test OTLP/HTTP trace receiver.  It decodes what the
 * runtime exports with OpenTelemetry's own generated protobuf code
 * (@opentelemetry/otlp-transformer 0.209.0, build/src/generated/root.js),
 * not with anything of ours, so an encoding bug cannot hide behind a
 * matching decoding bug.
 *
 *   node receiver.js [--port N] [--out FILE] [--mode ok|503|slow|429]
 *                    [--delay-ms N] [--discard]
 *
 * --discard: answer every export 200 at once, decoding nothing (a fast
 * collector for bench/tracing_cost.sh).
 *
 * Prints {"port":N} on stdout once listening.  Endpoints:
 *   POST /v1/traces  application/x-protobuf or application/json, gzip or
 *                    not: each span appended as one JSON line to FILE and
 *                    kept for GET /spans
 *   GET  /spans      every span so far, a JSON array
 *   GET  /stats      {"requests","spans","rejected","errors":[...]}
 *   POST /mode       {"mode":"ok|503|429|slow","delay_ms":N}: how the next
 *                    exports are answered (fault tests)
 *   POST /reset      forget the spans and counts
 * A body that does not decode is answered 400 and counted in errors.
 */
'use strict';

const fs = require('fs');
const http = require('http');
const zlib = require('zlib');
const root = require(
    '@opentelemetry/otlp-transformer/build/src/generated/root.js');

const Req = root.opentelemetry.proto.collector.trace.v1
                .ExportTraceServiceRequest;
const Res = root.opentelemetry.proto.collector.trace.v1
                .ExportTraceServiceResponse;

const args = process.argv.slice(2);
function arg(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

let mode = arg('--mode', 'ok');
let delayMs = parseInt(arg('--delay-ms', '0'), 10);
const outFile = arg('--out', null);
const port = parseInt(arg('--port', '0'), 10);
const discard = args.includes('--discard');

let spans = [];
const stats = {requests: 0, spans: 0, rejected: 0, errors: [],
               content_types: {}, encodings: {}};

const HEX = /^[0-9a-fA-F]*$/;

function fail(msg) {
  const e = new Error(msg);
  e.otlp = true;
  throw e;
}

/* OTLP/JSON ids are hex (not proto3 JSON's base64): checked and made
 * bytes, so fromObject sees what protobuf would carry. */
function hexId(v, bytes, what, optional) {
  if (v === undefined || v === null || v === '') {
    if (optional) return undefined;
    fail(what + ' missing');
  }
  if (typeof v !== 'string' || v.length !== 2 * bytes || !HEX.test(v))
    fail(what + ' is not ' + 2 * bytes + ' hex digits: ' +
         JSON.stringify(v));
  return Buffer.from(v, 'hex');
}

function intEnum(v, what) {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v))
    fail(what + ' must be an integer, got ' + JSON.stringify(v));
}

function fromJson(text) {
  let o;
  try {
    o = JSON.parse(text);
  } catch (e) {
    fail('invalid JSON: ' + e.message);
  }
  for (const rs of o.resourceSpans || []) {
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        s.traceId = hexId(s.traceId, 16, 'traceId');
        s.spanId = hexId(s.spanId, 8, 'spanId');
        const p = hexId(s.parentSpanId, 8, 'parentSpanId', true);
        if (p === undefined)
          delete s.parentSpanId;
        else
          s.parentSpanId = p;
        intEnum(s.kind, 'kind');
        if (s.status) intEnum(s.status.code, 'status.code');
        for (const l of s.links || []) {
          l.traceId = hexId(l.traceId, 16, 'link traceId');
          l.spanId = hexId(l.spanId, 8, 'link spanId');
        }
      }
    }
  }
  // fromObject -> encode -> decode: what the protobuf form would decode to
  return Req.decode(Req.encode(Req.fromObject(o)).finish());
}

function anyValue(v) {
  if (v == null) return null;
  if (v.stringValue != null) return v.stringValue;
  if (v.boolValue != null) return v.boolValue;
  if (v.intValue != null) return Number(v.intValue.toString());
  if (v.doubleValue != null) return v.doubleValue;
  if (v.arrayValue != null) return (v.arrayValue.values || []).map(anyValue);
  if (v.kvlistValue != null) return attrs(v.kvlistValue.values);
  if (v.bytesValue != null) return Buffer.from(v.bytesValue).toString('hex');
  return null;
}

function attrs(list) {
  const out = {};
  for (const kv of list || []) out[kv.key] = anyValue(kv.value);
  return out;
}

function hex(b) {
  return b && b.length ? Buffer.from(b).toString('hex') : '';
}

function flatten(msg, meta) {
  const out = [];
  for (const rs of msg.resourceSpans || []) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    for (const ss of rs.scopeSpans || []) {
      const scope = ss.scope ? {name: ss.scope.name,
                                version: ss.scope.version} : null;
      for (const s of ss.spans || []) {
        out.push({
          service: resource['service.name'],
          resource,
          scope,
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState || '',
          name: s.name,
          kind: s.kind || 0,
          flags: s.flags || 0,
          startTimeUnixNano: s.startTimeUnixNano
                                 ? s.startTimeUnixNano.toString() : '0',
          endTimeUnixNano: s.endTimeUnixNano
                               ? s.endTimeUnixNano.toString() : '0',
          attributes: attrs(s.attributes),
          droppedAttributesCount: s.droppedAttributesCount || 0,
          events: (s.events || []).map((e) => ({
            name: e.name,
            timeUnixNano: e.timeUnixNano ? e.timeUnixNano.toString() : '0',
            attributes: attrs(e.attributes),
          })),
          links: (s.links || []).map((l) => ({
            traceId: hex(l.traceId),
            spanId: hex(l.spanId),
            flags: l.flags || 0,
            attributes: attrs(l.attributes),
          })),
          status: {code: (s.status && s.status.code) || 0,
                   message: (s.status && s.status.message) || ''},
          contentType: meta.contentType,
          encoding: meta.encoding,
        });
      }
    }
  }
  return out;
}

function send(res, status, type, body, headers) {
  res.writeHead(status, Object.assign({'Content-Type': type,
                                       'Content-Length': body.length},
                                      headers || {}));
  res.end(body);
}

function exportTraces(req, res, body) {
  const ctype = (req.headers['content-type'] || '').split(';')[0].trim();
  const enc = (req.headers['content-encoding'] || 'identity').trim();
  stats.requests++;
  stats.content_types[ctype] = (stats.content_types[ctype] || 0) + 1;
  stats.encodings[enc] = (stats.encodings[enc] || 0) + 1;
  const json = ctype === 'application/json';
  const answer = () => {
    if (mode === '503' || mode === '429') {
      stats.rejected++;
      const b = Buffer.from(json ? '{"code":14,"message":"unavailable"}'
                                 : '');
      return send(res, parseInt(mode, 10),
                  json ? 'application/json' : 'application/x-protobuf', b,
                  {'Retry-After': '1'});
    }
    let msg;
    try {
      let raw = body;
      if (enc === 'gzip') raw = zlib.gunzipSync(raw);
      else if (enc !== 'identity') fail('unknown Content-Encoding ' + enc);
      if (json) msg = fromJson(raw.toString('utf8'));
      else if (ctype === 'application/x-protobuf') msg = Req.decode(raw);
      else fail('unexpected Content-Type ' + ctype);
    } catch (e) {
      const why = e.otlp ? e.message : 'decode: ' + e.message;
      stats.errors.push(why);
      process.stderr.write('receiver: 400: ' + why + '\n');
      return send(res, 400, 'text/plain', Buffer.from(why));
    }
    const got = flatten(msg, {contentType: ctype, encoding: enc});
    if (got.length === 0) stats.errors.push('an export with no spans');
    spans = spans.concat(got);
    stats.spans += got.length;
    if (outFile)
      fs.appendFileSync(outFile,
                        got.map((s) => JSON.stringify(s) + '\n').join(''));
    if (json) return send(res, 200, 'application/json', Buffer.from('{}'));
    return send(res, 200, 'application/x-protobuf',
                Buffer.from(Res.encode(Res.create({})).finish()));
  };
  if (mode === 'slow' && delayMs > 0)
    setTimeout(answer, delayMs);
  else
    answer();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const url = req.url.split('?')[0];
    if (req.method === 'POST' && url === '/v1/traces' && discard) {
      stats.requests++;
      return send(res, 200, 'application/x-protobuf', Buffer.alloc(0));
    }
    if (req.method === 'POST' && url === '/v1/traces')
      return exportTraces(req, res, body);
    if (req.method === 'GET' && url === '/spans')
      return send(res, 200, 'application/json',
                  Buffer.from(JSON.stringify(spans)));
    if (req.method === 'GET' && url === '/stats')
      return send(res, 200, 'application/json',
                  Buffer.from(JSON.stringify(stats)));
    if (req.method === 'POST' && url === '/mode') {
      try {
        const o = JSON.parse(body.toString('utf8'));
        mode = o.mode || 'ok';
        delayMs = o.delay_ms || 0;
      } catch (e) {
        return send(res, 400, 'text/plain', Buffer.from(e.message));
      }
      return send(res, 200, 'application/json', Buffer.from('{}'));
    }
    if (req.method === 'POST' && url === '/reset') {
      spans = [];
      stats.requests = stats.spans = stats.rejected = 0;
      stats.errors = [];
      stats.content_types = {};
      stats.encodings = {};
      return send(res, 200, 'application/json', Buffer.from('{}'));
    }
    send(res, 404, 'text/plain', Buffer.from('not found'));
  });
});
// a slow answer must not be cut by node's own timeouts
server.requestTimeout = 0;
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({port: server.address().port}) +
                       '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
