import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, ChatRpc, parseRpcInput, privacyRpcs, type RpcRequest } from '@ally/contracts';
import { AssistantsService } from './assistants/assistants.service.js';
import { RouterService } from './catalog/router.service.js';
import { CompatService } from './completions/compat.service.js';
import { ConversationsService } from './conversations/conversations.service.js';
import { MessagesService } from './conversations/messages.service.js';
import { PolicyService } from './policy/policy.service.js';
import { ChatPrivacyService } from './privacy/chat-privacy.service.js';

const ChatPrivacyRpc = privacyRpcs('chat');

/** chat's RPCs; each validates its input against the contract before anything else. */
@Controller()
export class ChatController {
  constructor(
    private readonly conversations: ConversationsService,
    private readonly messages: MessagesService,
    private readonly assistants: AssistantsService,
    private readonly compat: CompatService,
    private readonly policies: PolicyService,
    private readonly router: RouterService,
    private readonly privacy: ChatPrivacyService,
  ) {}

  @MessagePattern(ChatPrivacyRpc.export.subject)
  privacyExport(@Payload() req: RpcRequest) {
    const { userId, scope, page } = parseRpcInput(ChatPrivacyRpc.export.input, req.input);
    return this.privacy.export(userId, scope, page);
  }

  @MessagePattern(ChatPrivacyRpc.erase.subject)
  privacyErase(@Payload() req: RpcRequest) {
    const { userId, scope, slices } = parseRpcInput(ChatPrivacyRpc.erase.input, req.input);
    return this.privacy.erase(userId, scope, slices === true);
  }

  @MessagePattern(ChatRpc.listModels.subject)
  async models(@Payload() req: RpcRequest) {
    const actor = actorOf(req);
    const { workspace } = parseRpcInput(ChatRpc.listModels.input, req.input, 'query');
    const policy = await this.policies.resolve(actor, workspace ?? actor.apiKeyWorkspace ?? 'private');
    return {
      object: 'list' as const,
      data: this.router.models(policy).map((m) => ({ id: m.model, object: 'model' as const, created: 0, owned_by: 'ally', region: m.region, euResident: m.euResident })),
    };
  }

  @MessagePattern(ChatRpc.checkCatalog.subject)
  checkCatalog(@Payload() req: RpcRequest) {
    return this.router.checkCatalog(parseRpcInput(ChatRpc.checkCatalog.input, req.input).models);
  }

  @MessagePattern(ChatRpc.refreshPolicy.subject)
  async refreshPolicy(@Payload() req: RpcRequest) {
    const { orgId, removedMember } = parseRpcInput(ChatRpc.refreshPolicy.input, req.input);
    if (orgId && removedMember) await this.policies.refreshRemovedMember(orgId, removedMember);
    else await (orgId ? this.policies.refreshOrg(actorOf(req), orgId) : this.policies.refreshUser(actorOf(req)));
    return null;
  }

  @MessagePattern(ChatRpc.createConversation.subject)
  createConversation(@Payload() req: RpcRequest) {
    return this.conversations.create(actorOf(req), parseRpcInput(ChatRpc.createConversation.input, req.input));
  }

  @MessagePattern(ChatRpc.listConversations.subject)
  listConversations(@Payload() req: RpcRequest) {
    const { workspace, limit, cursor } = parseRpcInput(ChatRpc.listConversations.input, req.input, 'query');
    return this.conversations.list(actorOf(req), workspace, limit, cursor);
  }

  @MessagePattern(ChatRpc.getConversation.subject)
  getConversation(@Payload() req: RpcRequest) {
    const { id, limit, cursor } = parseRpcInput(ChatRpc.getConversation.input, req.input);
    return this.conversations.get(actorOf(req), id, limit, cursor);
  }

  @MessagePattern(ChatRpc.deleteConversation.subject)
  async deleteConversation(@Payload() req: RpcRequest) {
    await this.conversations.delete(actorOf(req), parseRpcInput(ChatRpc.deleteConversation.input, req.input).id);
    return null;
  }

  @MessagePattern(ChatRpc.postMessage.subject)
  postMessage(@Payload() req: RpcRequest) {
    return this.messages.post(actorOf(req), parseRpcInput(ChatRpc.postMessage.input, req.input));
  }

  @MessagePattern(ChatRpc.streamMessage.subject)
  streamMessage(@Payload() req: RpcRequest) {
    return this.messages.stream(actorOf(req), parseRpcInput(ChatRpc.streamMessage.input, req.input));
  }

  @MessagePattern(ChatRpc.createAssistant.subject)
  createAssistant(@Payload() req: RpcRequest) {
    return this.assistants.create(actorOf(req), parseRpcInput(ChatRpc.createAssistant.input, req.input));
  }

  @MessagePattern(ChatRpc.listAssistants.subject)
  listAssistants(@Payload() req: RpcRequest) {
    const { workspace, limit, cursor } = parseRpcInput(ChatRpc.listAssistants.input, req.input, 'query');
    return this.assistants.list(actorOf(req), workspace, limit, cursor);
  }

  @MessagePattern(ChatRpc.deleteAssistant.subject)
  async deleteAssistant(@Payload() req: RpcRequest) {
    await this.assistants.remove(actorOf(req), parseRpcInput(ChatRpc.deleteAssistant.input, req.input).id);
    return null;
  }

  @MessagePattern(ChatRpc.completions.subject)
  completions(@Payload() req: RpcRequest) {
    const { workspace, request, cancel } = parseRpcInput(ChatRpc.completions.input, req.input);
    return this.compat.complete(actorOf(req), workspace, request, cancel);
  }

  @MessagePattern(ChatRpc.completionsStream.subject)
  completionsStream(@Payload() req: RpcRequest) {
    const { workspace, request, stream } = parseRpcInput(ChatRpc.completionsStream.input, req.input);
    return this.compat.stream(actorOf(req), workspace, request, stream);
  }
}
