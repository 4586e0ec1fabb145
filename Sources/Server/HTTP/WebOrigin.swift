import Foundation

/// A URL's origin as browsers send it in `Origin`: lowercase scheme and host, no default port.
/// Nil for anything but http(s) with a host.
enum WebOrigin {
    static func of(_ url: URL) -> String? {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host?.lowercased() else { return nil }
        let isDefault = (scheme == "https" && url.port == 443) || (scheme == "http" && url.port == 80)
        return scheme + "://" + host + (url.port.map { isDefault ? "" : ":\($0)" } ?? "")
    }
}
