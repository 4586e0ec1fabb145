import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import Storage

/// The change stream (`GET /v1/watch`): sidecars follow the change log to keep their caches exact.
struct WatchRoutes {
    let changeFeed: ChangeFeed
    let hub: WatchHub

    /// Server-sent events of the change log from `since` on: `id` is the revision, `event` the kind,
    /// `data` `{"revision", "kind", "subject", "at"}`. Sidecars use it to keep their own caches exact.
    @Sendable func watch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await context.caller()
        // A reconnecting EventSource sends Last-Event-ID: it resumes there, not at `since`.
        var since: Int64
        var query: Int64?
        if let text = try request.singleQuery("since") {
            guard let n = Int64(text), n >= 0 else { throw Problem.badRequest("since must be a non-negative integer") }
            query = n
        }
        if let last = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let n = Int64(last), n >= 0 else { throw Problem.badRequest("Last-Event-ID must be a non-negative integer") }
            since = n
        } else if let query {
            since = query
        } else {
            since = try await changeFeed.latestRevision()
        }
        // The change log names every org and user: only the root (or its unscoped key) may follow
        // it. A scoped key, even the root's, is limited to its orgs and may not read all of them.
        guard caller.isRoot else {
            throw Problem.forbidden("only the platform administrator may watch the change log")
        }
        let feed = changeFeed
        let start = since
        // Subscribed before the backlog is read, so nothing committed meanwhile is missed.
        let live: AsyncStream<WatchHub.Event>
        do {
            live = try hub.subscribe()
        } catch {
            throw Problem(.serviceUnavailable, code: "unavailable",
                          detail: "this node serves at most \(hub.capacity) watch streams; try again later or on another node",
                          headers: [.retryAfter: "5"])
        }
        let body = ResponseBody { writer in
            var cursor = start
            func send(_ change: Change) async throws {
                let data = try JSONBody.encoder.encode(WatchEvent(revision: change.revision, kind: change.kind, subject: change.subject, at: change.at))
                try await writer.write(ByteBuffer(string: "id: \(change.revision)\nevent: \(change.kind)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                cursor = change.revision
            }
            try await writer.write(ByteBuffer(string: ": watching from revision \(cursor)\n\n"))
            // The backlog since `since`, a page at a time: read once, not polled.
            while true {
                let batch = try await feed.changes(after: cursor, limit: 500)
                for change in batch { try await send(change) }
                if batch.count < 500 { break }
            }
            // Then what the node's follower reads. The stream ends on shutdown, or when this
            // reader falls too far behind; either way the client resumes with Last-Event-ID.
            // On SIGTERM every stream ends at once, so draining in-flight requests does not wait
            // for followers; they reconnect to another node with Last-Event-ID.
            try await withGracefulShutdownHandler {
                for await event in live {
                    switch event {
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    case .changes(let batch):
                        for change in batch where change.revision > cursor { try await send(change) }
                    }
                }
            } onGracefulShutdown: { [hub] in
                hub.close()
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    struct WatchEvent: Encodable {
        let revision: Int64
        let kind: String
        let subject: String
        let at: Date
    }
}
