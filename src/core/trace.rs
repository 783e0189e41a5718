//! Where an event's unit of work is traced: the span context of the unit's `read` span, so the
//! span of the batch that delivers it can be its child (telemetry starts and ends the spans).

use opentelemetry::trace::SpanContext;

/// Where a unit's span is, for the spans of the batches that deliver its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceContext(Option<SpanContext>);

impl TraceContext {
    pub fn new(span: Option<SpanContext>) -> Self {
        TraceContext(span)
    }
    /// The unit's span, when traces are exported.
    pub fn span(&self) -> Option<&SpanContext> {
        self.0.as_ref()
    }
}
