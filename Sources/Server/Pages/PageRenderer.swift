import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// Renders the hosted pages from the Mustache templates shipped in this module's resources
/// (`Pages/Templates`; `head`, `foot` and `error` are partials every page includes), and serves
/// the stylesheet. Every page answer carries the page security headers.
struct PageRenderer: Sendable {
    let library: MustacheLibrary
    let brand: Brand
    /// `/assets/{file}`: the stylesheet, the brand colour's stylesheet, the script; with their types.
    let assets: [String: (body: ByteBuffer, type: String)]

    static func load(brand: Brand) async throws -> PageRenderer {
        guard let root = Bundle.module.resourceURL?.appendingPathComponent("Templates"),
              let css = try? Data(contentsOf: Bundle.module.resourceURL!.appendingPathComponent("Assets/portcullis.css")),
              let js = try? Data(contentsOf: Bundle.module.resourceURL!.appendingPathComponent("Assets/portcullis.js")) else {
            throw ConfigError(variable: "PORTCULLIS_BRAND_NAME", message: "the page templates are not bundled with this binary")
        }
        let library = try await MustacheLibrary(directory: root.path)
        // The brand colour reaches the pages as a stylesheet, not inline style: the CSP allows
        // styles from this origin only.
        let brandCSS = ":root { --brand: \(brand.color); }\n"
        return PageRenderer(library: library, brand: brand, assets: [
            "portcullis.css": (ByteBuffer(bytes: css), "text/css; charset=utf-8"),
            "brand.css": (ByteBuffer(string: brandCSS), "text/css; charset=utf-8"),
            "portcullis.js": (ByteBuffer(bytes: js), "text/javascript; charset=utf-8"),
        ])
    }

    /// Scripts from this origin only and no inline ones, styles and forms to this origin, no
    /// framing; images may come from an https logo.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func page(_ template: String, title: String, status: HTTPResponse.Status = .ok, _ values: [String: Any] = [:]) -> Response {
        var context = values
        context["title"] = title
        context["brand_name"] = brand.name
        if let logo = brand.logoURL { context["brand_logo_url"] = logo }
        let html = library.render(context, withTemplate: template) ?? "<!doctype html><title>\(title)</title><p>page missing</p>"
        var response = Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
        Self.secure(&response.headers)
        return response
    }

    static func secure(_ headers: inout HTTPFields) {
        headers[HTTPField.Name("Content-Security-Policy")!] = contentSecurityPolicy
        // Pages carry tokens in their URLs: never send them on as a Referer.
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[.cacheControl] = "no-store"
    }

    /// A page with a heading and a few paragraphs (the outcome of a form).
    func message(_ title: String, _ paragraphs: [String], status: HTTPResponse.Status = .ok, link: (href: String, text: String)? = nil) -> Response {
        var values: [String: Any] = ["paragraphs": paragraphs]
        if let link { values["link_href"] = link.href; values["link_text"] = link.text }
        return page("message", title: title, status: status, values)
    }

    func asset(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let file = context.parameters.get("file"), let (body, type) = assets[file] else { throw Problem.notFound("no such asset") }
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300"],
                        body: .init(byteBuffer: body))
    }
}
