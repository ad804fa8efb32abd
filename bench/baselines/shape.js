// The 202 of job creation in the gateway's shape (docs/openapi.json,
// CreateJobResponse), shared by the baselines: the benchmark reads every
// target's answers through the contract's types.
export function created(jobId, token, expiresAt) {
  return {
    expiresAt,
    jobId,
    stateUrl: `/api/jobs/${jobId}/state`,
    token,
    wsUrl: `/ws/progress?jobId=${jobId}`,
  };
}
