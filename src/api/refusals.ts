import type { FastifyReply } from 'fastify';
import type { AccessErrorCode } from '../access/outcomes.ts';
import { errorBody } from './schemas.ts';

/** The refusals a route may answer, for its OpenAPI description. */
export const refusalResponses = {
  400: errorBody,
  401: errorBody,
  403: errorBody,
  404: errorBody,
  409: errorBody,
  422: errorBody,
};

/** `{ error, message }` with the status, as every refusal of /api/v1 is written. */
export function refuse(reply: FastifyReply, status: number, error: string, message: string) {
  return reply.code(status).send({ error, message });
}

/** A refusal from the access service, as the API states it: the code, and the service's sentence. */
export function refused(reply: FastifyReply, result: { code: AccessErrorCode; message: string }) {
  return refuse(reply, statusOfRefusal(result.code), result.code, result.message);
}

/** The HTTP status of each refusal the access service can give: one switch, every code. */
export function statusOfRefusal(code: AccessErrorCode): number {
  switch (code) {
    case 'request_not_found':
    case 'grant_not_found':
    case 'unknown_resource':
    case 'unknown_scope':
      return 404;
    case 'not_allowed_to_request':
    case 'not_an_approver':
    case 'self_approval':
    case 'not_allowed_to_revoke':
    case 'not_grant_owner':
      return 403;
    case 'request_not_pending':
    case 'already_approved':
    case 'grant_not_active':
    case 'extension_pending':
    case 'extension_limit_reached':
    case 'grant_version_changed':
    case 'not_due':
      return 409;
    case 'duration_too_short':
    case 'duration_too_long':
    case 'duration_longer_than_requested':
    case 'reason_empty':
    case 'reason_too_long':
    case 'quota_above_policy':
    case 'text_has_control_characters':
      return 422;
  }
}
