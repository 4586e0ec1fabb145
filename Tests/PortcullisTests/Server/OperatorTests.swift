import Foundation
import Server
import Testing

/// What an operator reads: metrics about the process and the build, the served API
/// description, and the list of configuration variables.
@Suite("Operator surface")
struct OperatorTests {
    @Test("/metrics carries the process_* metrics and the build info")
    func processMetrics() async throws {
        try await withApp(.sqlite, configure: rootSetup) { api, _ in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let text = try await api.send(.get, "/metrics", token: root.access).text
            for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                         "process_start_time_seconds", "process_open_fds", "process_max_fds"] {
                let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
                let value = line.flatMap { Double($0.split(separator: " ")[1]) }
                #expect(value.map { $0 > 0 } == true, "\(name): \(String(describing: line))")
            }
            let started = text.split(separator: "\n").first { $0.hasPrefix("process_start_time_seconds ") }.flatMap { Double($0.split(separator: " ")[1]) }
            #expect(started.map { abs($0 - Date().timeIntervalSince1970) < 24 * 3600 } == true)
            #expect(text.contains("portcullis_build_info{version=\"\(PortcullisBuild.version)\",commit=\"\(PortcullisBuild.commit)\"} 1"), "\(text.prefix(2000))")
            #expect(text.contains("portcullis_http_requests_in_flight"))
        }
    }

    @Test("the served API description names this server")
    func servedServers() async throws {
        try await withApp(.sqlite) { api, _ in
            let yaml = try await api.send(.get, "/openapi.yaml").text
            let block = yaml.components(separatedBy: "\nservers:\n")[1].split(separator: "\n").prefix(2)
            #expect(block.first == "  - url: \"http://portcullis.test\"", "\(block)")
            #expect(!yaml.contains("127.0.0.1:8080"))
            #expect(yaml.contains("\npaths:\n") && yaml.contains("\ncomponents:\n"))
        }
    }

    @Test("serve --help, the configuration code and the README's table name the same variables")
    func variables() throws {
        let listed = Set(AppConfig.variables.map(\.name))
        #expect(listed.count == AppConfig.variables.count)
        let config = try String(contentsOf: repositoryRoot.appendingPathComponent("Sources/Server/App/Config.swift"), encoding: .utf8)
        var read = Set<String>()
        for pattern in [#"PORTCULLIS_([A-Z_]+)"#, #"(?:value|count)\("([A-Z_]+)""#] {
            let regex = try NSRegularExpression(pattern: pattern)
            for m in regex.matches(in: config, range: NSRange(config.startIndex..., in: config)) {
                let name = String(config[Range(m.range(at: 1), in: config)!])
                if !name.isEmpty { read.insert("PORTCULLIS_" + name) }
            }
        }
        read.remove("PORTCULLIS_")
        #expect(read == listed, "read but not listed: \(read.subtracting(listed)); listed but not read: \(listed.subtracting(read))")
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let table = Set(readme.split(separator: "\n").filter { $0.hasPrefix("| `PORTCULLIS_") }.compactMap { line in
            line.split(separator: "`").dropFirst().first.map(String.init)
        })
        #expect(table == listed, "README only: \(table.subtracting(listed)); code only: \(listed.subtracting(table))")
    }
}

@Suite("Hosted pages: configuration and form guard")
struct PageConfigTests {
    @Test("branding variables are checked, with one line naming the variable")
    func branding() throws {
        let d = try AppConfig.fromEnvironment([:])
        #expect(d.brand == Brand())
        let set = try AppConfig.fromEnvironment([
            "PORTCULLIS_BRAND_NAME": "Acme ID", "PORTCULLIS_BRAND_COLOR": "#AA3300", "PORTCULLIS_BRAND_LOGO_URL": "https://cdn.example/logo.svg",
        ])
        #expect(set.brand.name == "Acme ID" && set.brand.color == "#aa3300" && set.brand.logoURL == "https://cdn.example/logo.svg")
        for (variable, value) in [
            ("PORTCULLIS_BRAND_COLOR", "red"), ("PORTCULLIS_BRAND_COLOR", "#12345g"), ("PORTCULLIS_BRAND_LOGO_URL", "http://cdn.example/logo.svg"),
            ("PORTCULLIS_BRAND_LOGO_URL", "javascript:alert(1)"), ("PORTCULLIS_BRAND_NAME", String(repeating: "x", count: 61)),
        ] {
            #expect(throws: ConfigError.self, "\(variable)=\(value)") { try AppConfig.fromEnvironment([variable: value]) }
            do { _ = try AppConfig.fromEnvironment([variable: value]) } catch { #expect((error as? ConfigError)?.variable == variable) }
        }
    }
}
