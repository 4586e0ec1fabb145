import Foundation
import Hummingbird
import NIOCore

/// Per-request state shared by middleware and handlers.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The connection, for the one write a handler makes besides its response: `100 Continue`.
    let channel: any Channel
    /// Decoding bodies goes through `JSONBody`, which enforces this (SPEC: 64 KiB).
    public var maxUploadSize: Int { JSONBody.defaultLimit }

    /// The client's address: the peer's, or from `X-Forwarded-For` when the peer is a trusted
    /// proxy (set by `RequestObserver`). Recorded on sessions and used by the abuse limits.
    public var clientIP: String
    /// Resolves the caller on first use (`AuthenticationMiddleware`).
    var callerSlot: CallerSlot?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
        clientIP = remoteAddress?.ipAddress ?? ""
    }
}
