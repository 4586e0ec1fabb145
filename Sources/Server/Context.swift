import Foundation
import Hummingbird
import NIOCore

/// Per-request state shared by middleware and handlers.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Decoding bodies goes through `JSONBody`, which enforces this (SPEC: 64 KiB).
    public var maxUploadSize: Int { JSONBody.defaultLimit }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's address as recorded on sessions.
    public var clientIP: String {
        remoteAddress?.ipAddress ?? ""
    }
}
