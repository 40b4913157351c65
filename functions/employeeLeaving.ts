import { app } from '@azure/functions';
import { createQueueHandler } from '../shared/functionHandler';
import { getRuntime } from '../shared/runtime';

// Validate settings at start-up: a missing setting stops the app from loading (and says which),
// while the messages wait safely in the queue.
getRuntime();

app.serviceBusQueue('employeeLeaving', {
  connection: 'ServiceBusConnection',
  queueName: '%EMPLOYEE_LEAVING_QUEUE%',
  handler: createQueueHandler(getRuntime, 'employeeLeaving', [
    'employee.leaving',
    'employee.leaving.cancelled',
  ]),
});
