import Foundation
import Hummingbird
import NIOCore
import Storage
import Tenancy

/// Root-only export and import of a whole instance.
struct BackupRoutes {
    let backup: SQLBackup

    /// A restore carries the whole instance, so it may be far larger than an API body.
    static let restoreLimit = 256 * 1024 * 1024

    @Sendable func export(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await context.requireRoot()
        let data = try BackupDocument.encode(try await backup.export(actor: caller.actor(serviceAccountRole: nil)))
        return Response(
            status: .ok,
            headers: [.contentType: "application/json", .cacheControl: "no-store",
                      .contentDisposition: "attachment; filename=\"portcullis-backup.json\""],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct RestoreResponse: Encodable {
        let users: Int, orgs: Int, memberships: Int, auditEvents: Int
    }

    @Sendable func restore(_ request: Request, context: AppRequestContext) async throws -> Response {
        try JSONBody.requireJSON(request)
        // Unlike other routes, the caller is checked before the body is read: nobody but the
        // root may make the server buffer up to 256 MiB.
        let caller = try await context.requireRoot()
        let buffer = try await JSONBody.collect(request, limit: Self.restoreLimit)
        let document = try BackupDocument.decode(Data(buffer: buffer))
        let summary = try await backup.restore(document, actor: caller.actor(serviceAccountRole: nil))
        return try JSONBody.response(
            RestoreResponse(users: summary.users, orgs: summary.orgs, memberships: summary.memberships, auditEvents: summary.auditEvents),
            revision: summary.revision)
    }
}
