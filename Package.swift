// swift-tools-version: 6.0
import CompilerPluginSupport
import PackageDescription

let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "portcullis",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "portcullis", targets: ["portcullis"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Imported directly by the server (also pulled in by Hummingbird).
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // Outbound HTTP: webhook deliveries.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // `@PublicInit`: the public memberwise initializers of the domain's value types.
        .package(url: "https://github.com/swiftlang/swift-syntax.git", from: "603.0.0"),
    ],
    targets: [
        // argon2id from the reference C implementation (Debian libargon2-dev).
        .systemLibrary(
            name: "CArgon2",
            path: "Sources/CArgon2",
            pkgConfig: "libargon2",
            providers: [.apt(["libargon2-dev"])]
        ),
        // SMTP through libcurl (Debian libcurl4-openssl-dev); its variadic setters stay in C.
        .target(
            name: "CCurlSMTP",
            path: "Sources/CCurlSMTP",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        // `@PublicInit` (Memberwise) and the compiler plugin that writes it (MemberwiseMacros).
        .macro(
            name: "MemberwiseMacros",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "Memberwise", dependencies: ["MemberwiseMacros"], swiftSettings: swiftSettings),
        // Pure domain modules: no HTTP framework, no database driver.
        // Who acts and what changed: roles, principals, key scopes, change events. Below every other module.
        .target(name: "Authority", swiftSettings: swiftSettings),
        // Wire formats shared by the API and backups: RFC 3339 timestamps, snake_case keys.
        .target(name: "Wire", swiftSettings: swiftSettings),
        .target(name: "Tenancy", dependencies: ["Authority", "Memberwise"], swiftSettings: swiftSettings),
        .target(name: "Policy", dependencies: ["Authority", "Memberwise", "Tenancy"], swiftSettings: swiftSettings),
        // API keys and service accounts: Identity's key records under Tenancy's access rules.
        .target(name: "Keys", dependencies: ["Authority", "Memberwise", "Tenancy", "Identity"], swiftSettings: swiftSettings),
        .target(name: "Invites", dependencies: ["Authority", "Memberwise", "Tenancy", "Identity"], swiftSettings: swiftSettings),
        // Webhooks: endpoints and their rules, Standard Webhooks signing, event filters, retries, the SSRF guard, the dispatcher.
        .target(name: "Webhooks", dependencies: ["Authority", "Memberwise", "Tenancy", "Wire", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        // The OpenID provider (SPEC §14): clients and their rules.
        .target(
            name: "OpenID",
            dependencies: [
                "Authority", "Memberwise", "Tenancy", "Identity", .product(name: "Crypto", package: "swift-crypto"), .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: swiftSettings),
        // Federated sign-in (SPEC §15): upstream providers (GitHub, Google, any OpenID provider), linking, ID-token checks.
        .target(
            name: "Federation",
            dependencies: [
                "Authority", "Memberwise", "Tenancy", "Identity", .product(name: "Crypto", package: "swift-crypto"), .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "Identity",
            dependencies: [
                "Authority", "Memberwise", "CArgon2",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA for RS256 ID tokens (OpenID Connect requires it).
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Versioned SQL for both dialects, shipped as resources.
        .target(
            name: "Migrations",
            path: "Migrations",
            exclude: [],
            resources: [.copy("sqlite"), .copy("postgres")],
            swiftSettings: swiftSettings
        ),
        // docs/openapi.yaml, served at /openapi.yaml.
        .target(
            name: "APIDocs",
            path: "docs",
            exclude: ["architecture.md", "images"],
            resources: [.copy("openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Storage",
            dependencies: [
                "Authority", "Memberwise", "Identity", "Tenancy", "Policy", "Keys", "Invites", "OpenID", "Webhooks", "Federation", "Migrations", "Wire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Server",
            dependencies: [
                "Authority", "Memberwise", "Storage", "Identity", "Tenancy", "Policy", "Keys", "Invites", "OpenID", "Webhooks", "Federation", "APIDocs", "CCurlSMTP", "Wire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The hosted pages' Mustache templates and stylesheet.
            resources: [.copy("Pages/Templates"), .copy("Pages/Assets")],
            swiftSettings: swiftSettings,
            plugins: ["BuildInfo"]
        ),
        // The git commit of the build, for `--version` and the build-info metric.
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .executableTarget(
            name: "portcullis",
            dependencies: [
                "Server", "Storage", "Identity", "Tenancy", "Wire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // `make bench`: the decision path in process (decisions/s, memory per membership, cold load).
        .executableTarget(
            name: "portcullis-bench",
            dependencies: ["Authority", "Policy", "Tenancy", "Storage", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/portcullis-bench",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PortcullisTests",
            dependencies: [
                "Server", "Storage", "Identity", "Tenancy", "Policy", "Keys", "Invites", "OpenID", "Authority", "Wire", "Webhooks", "Federation",
                "Memberwise",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
