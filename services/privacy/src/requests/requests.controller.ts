import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, parseRpcInput, PrivacyRpc, type RpcRequest } from '@ally/contracts';
import { DownloadsService } from '../exports/downloads.service.js';
import { SagaWorker } from '../sagas/saga-worker.js';
import { requireSignedIn } from '../common/privacy-errors.js';
import { RequestsService } from './requests.service.js';

const subject = (req: RpcRequest) => requireSignedIn(actorOf(req));

/** A data subject's own requests and downloads: every handler works on the caller's data only. */
@Controller()
export class RequestsController {
  constructor(
    private readonly requests: RequestsService,
    private readonly downloads: DownloadsService,
    private readonly worker: SagaWorker,
  ) {}

  @MessagePattern(PrivacyRpc.createRequest.subject)
  async create(@Payload() req: RpcRequest) {
    const actor = subject(req);
    const created = await this.requests.create(actor, parseRpcInput(PrivacyRpc.createRequest.input, req.input));
    setImmediate(() => this.worker.wake());
    return created;
  }

  @MessagePattern(PrivacyRpc.listRequests.subject)
  list(@Payload() req: RpcRequest) {
    const { limit, cursor } = parseRpcInput(PrivacyRpc.listRequests.input, req.input, 'query');
    return this.requests.listOwn(subject(req), limit, cursor);
  }

  @MessagePattern(PrivacyRpc.getRequest.subject)
  get(@Payload() req: RpcRequest) {
    return this.requests.getOwn(subject(req), parseRpcInput(PrivacyRpc.getRequest.input, req.input).id);
  }

  @MessagePattern(PrivacyRpc.download.subject)
  download(@Payload() req: RpcRequest) {
    const { id, format, headOnly } = parseRpcInput(PrivacyRpc.download.input, req.input, 'query');
    return this.downloads.describe(subject(req), id, format, { recorded: !headOnly });
  }

  @MessagePattern(PrivacyRpc.downloadPart.subject)
  part(@Payload() req: RpcRequest) {
    const { id, format, part } = parseRpcInput(PrivacyRpc.downloadPart.input, req.input);
    return this.downloads.part(subject(req), id, format, part);
  }
}
