import NIOCore
import Policy

/// Decisions as JSON, written by hand (JSONWriter): the exact bytes `JSONBody.response` gives
/// for a `DecisionResponse` and for `{"results": [...]}`, without JSONEncoder's cost per key.
extension DecisionResponse {
    /// `{"allowed":…,"reason":…,"role":…}`, keys sorted as the encoder sorts them; the reason
    /// is streamed from its pieces, never built as a string (a batch writes a thousand).
    static func write(_ decision: Decision, to json: inout JSONWriter) {
        json.raw(decision.allowed ? #"{"allowed":true,"reason":"# : #"{"allowed":false,"reason":"#)
        json.string(pieces: decision.forEachReasonPiece)
        json.raw(#","role":"#)
        if let role = decision.role { json.string(role.rawValue) } else { json.raw("null") }
        json.raw("}")
    }

    /// One decision's response body.
    static func json(_ decision: Decision) -> ByteBuffer {
        var json = JSONWriter(capacity: 96)
        write(decision, to: &json)
        return json.buffer
    }

    /// A batch's response body: `{"results":[…]}`, in the order of the checks.
    static func json(results decisions: [Decision]) -> ByteBuffer {
        var json = JSONWriter(capacity: 16 + decisions.count * 80)
        json.raw(#"{"results":["#)
        for (n, decision) in decisions.enumerated() {
            if n > 0 { json.raw(",") }
            write(decision, to: &json)
        }
        json.raw("]}")
        return json.buffer
    }
}
