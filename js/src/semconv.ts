/**
 * Attribute names spanloom writes: the same keys as the Python SDK (`spanloom.semconv`), so
 * spans from Node and from Python group into the same sessions and users.
 */

/** The session (conversation) a span belongs to. */
export const SESSION_ID = "session.id";
/** The GenAI semantic-convention mirror of `session.id`. */
export const GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id";
/** The end user a span belongs to. */
export const USER_ID = "user.id";
/** Free-form metadata, as one JSON string. */
export const METADATA = "metadata";
/** Tags, as a list of strings. */
export const TAG_TAGS = "tag.tags";
/** Resource attribute naming the project the spans belong to. */
export const PROJECT_NAME = "project.name";
