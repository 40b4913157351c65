import { checkInfra, loadInfraFiles } from '../../../test/infra/checks';
import { SETTINGS } from '../../../shared/config';
import { QUEUE_POLICY } from '../../../shared/queuePolicy';
import { requiredGraphPermissions } from '../../../shared/graph/permissions';
test('smoke', () => {
  const files = loadInfraFiles('/work/main');
  const findings = checkInfra(files, { settings: SETTINGS, queuePolicy: QUEUE_POLICY, requiredGraphPermissions });
  console.log(JSON.stringify(findings, null, 2));
});
