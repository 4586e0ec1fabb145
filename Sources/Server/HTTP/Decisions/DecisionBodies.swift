// The decision request bodies, read on every decision: JSONDecoder reads them as ever, but
// their usual shape first goes through a hand-written reader (JSONReader), which gives up to
// JSONDecoder on anything unusual. Only the standard library here, so scripts/fuzz-native.sh
// can build these readers alone and hold them to JSONDecoder's answers.

struct SubjectBody: Decodable, Sendable, Equatable {
    let userId: String?
    let token: String?
    let serviceAccountId: String?
    /// Bindings only: a group is never the subject of a decision.
    let groupId: String?
}

struct CheckBody: Decodable, Sendable, Equatable {
    let subject: SubjectBody?
    let object: String
    let action: String
    let consistency: String?
    let atLeast: Int64?
}

struct BatchBody: Decodable, Sendable, Equatable {
    let checks: [CheckBody]
    let consistency: String?
    let atLeast: Int64?
}

private typealias Unsure = JSONReader.Unsure

extension SubjectBody: QuickJSONReadable {
    private static let properties: [StaticString] = ["userId", "token", "serviceAccountId", "groupId"]

    static func quickRead(_ bytes: UnsafeRawBufferPointer) -> SubjectBody? {
        JSONReader.document(bytes) { reader throws(Unsure) in try read(&reader) }
    }

    fileprivate static func read(_ reader: inout JSONReader) throws(Unsure) -> SubjectBody {
        var userId = JSONReader.Field<String?>(), token = JSONReader.Field<String?>()
        var serviceAccountId = JSONReader.Field<String?>(), groupId = JSONReader.Field<String?>()
        try reader.object { r, key throws(Unsure) in
            if key.is("userId", or: "user_id") {
                try userId.read(&r) { r throws(Unsure) in try r.optionalString() }
            } else if key.is("token") {
                try token.read(&r) { r throws(Unsure) in try r.optionalString() }
            } else if key.is("serviceAccountId", or: "service_account_id") {
                try serviceAccountId.read(&r) { r throws(Unsure) in try r.optionalString() }
            } else if key.is("groupId", or: "group_id") {
                try groupId.read(&r) { r throws(Unsure) in try r.optionalString() }
            } else {
                try key.mustBeUnknown(properties)
                try r.skipValue()
            }
        }
        return SubjectBody(userId: userId.value ?? nil, token: token.value ?? nil,
                           serviceAccountId: serviceAccountId.value ?? nil, groupId: groupId.value ?? nil)
    }
}

extension CheckBody: QuickJSONReadable {
    private static let properties: [StaticString] = ["subject", "object", "action", "consistency", "atLeast"]

    static func quickRead(_ bytes: UnsafeRawBufferPointer) -> CheckBody? {
        JSONReader.document(bytes) { reader throws(Unsure) in try read(&reader) }
    }

    fileprivate static func read(_ reader: inout JSONReader) throws(Unsure) -> CheckBody {
        var subject = JSONReader.Field<SubjectBody?>(), object = JSONReader.Field<String>(), action = JSONReader.Field<String>()
        var options = DecisionOptions()
        try reader.object { r, key throws(Unsure) in
            if key.is("subject") {
                try subject.read(&r) { r throws(Unsure) in try r.null() ? nil : SubjectBody.read(&r) }
            } else if key.is("object") {
                try object.read(&r) { r throws(Unsure) in try r.string() }
            } else if key.is("action") {
                try action.read(&r) { r throws(Unsure) in try r.string() }
            } else {
                try options.read(key, &r, properties: properties)
            }
        }
        // A missing field is the decoder's to word (its 400 names the field).
        guard let object = object.value, let action = action.value else { throw Unsure() }
        return CheckBody(subject: subject.value ?? nil, object: object, action: action,
                         consistency: options.consistency, atLeast: options.atLeast)
    }
}

extension BatchBody: QuickJSONReadable {
    private static let properties: [StaticString] = ["checks", "consistency", "atLeast"]

    static func quickRead(_ bytes: UnsafeRawBufferPointer) -> BatchBody? {
        JSONReader.document(bytes) { reader throws(Unsure) in try read(&reader) }
    }

    fileprivate static func read(_ reader: inout JSONReader) throws(Unsure) -> BatchBody {
        var checks = JSONReader.Field<[CheckBody]>(), options = DecisionOptions()
        try reader.object { r, key throws(Unsure) in
            if key.is("checks") {
                try checks.read(&r) { r throws(Unsure) in
                    var all: [CheckBody] = []
                    try r.array { r throws(Unsure) in all.append(try CheckBody.read(&r)) }
                    return all
                }
            } else {
                try options.read(key, &r, properties: properties)
            }
        }
        guard let checks = checks.value else { throw Unsure() }
        return BatchBody(checks: checks, consistency: options.consistency, atLeast: options.atLeast)
    }
}

/// `consistency` and `atLeast`, which a check and a batch both take, and what becomes of any
/// other key of theirs: ignored unless the decoder would read it as one of `properties`.
private struct DecisionOptions {
    private var consistencyField = JSONReader.Field<String?>(), atLeastField = JSONReader.Field<Int64?>()

    var consistency: String? { consistencyField.value ?? nil }
    var atLeast: Int64? { atLeastField.value ?? nil }

    mutating func read(_ key: JSONReader.Key, _ r: inout JSONReader, properties: [StaticString]) throws(Unsure) {
        if key.is("consistency") {
            try consistencyField.read(&r) { r throws(Unsure) in try r.optionalString() }
        } else if key.is("atLeast", or: "at_least") {
            try atLeastField.read(&r) { r throws(Unsure) in try r.optionalInt64() }
        } else {
            try key.mustBeUnknown(properties)
            try r.skipValue()
        }
    }
}
